//! `privicore store` and `privicore fetch` as a user runs them, against the real binary:
//! files and pipes, inline below the inline exchange maximum and streamed through the
//! upstream and downstream listeners above it, and a download tampered with on the way,
//! which must leave no output file.

mod engine_process;

use engine_process::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASSWORD: &str = "correct-horse-battery";

fn random_payload(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

/// The engine on ephemeral ports (all four listeners) and a CLI profile with three hosted
/// storage devices.
struct Setup {
    dir: tempfile::TempDir,
    engine: Engine,
    config: PathBuf,
}

impl Setup {
    fn new(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_process::start_with(&dir.path().join("engine"), None, extra);
        let config = dir.path().join("cli.json");
        let setup = Self {
            dir,
            engine,
            config,
        };
        let username = format!(
            "cli-stream-{}-{}@example.com",
            std::process::id(),
            rand::random::<u32>()
        );
        let (api, ws) = (setup.engine.api.clone(), setup.engine.ws.clone());
        setup.ok(&[
            "profile",
            "create",
            "--username",
            &username,
            "--password",
            PASSWORD,
            "--api",
            &api,
            "--ws",
            &ws,
        ]);
        let attached = setup.ok(&["devices", "attach", "--count", "3"]);
        assert_eq!(attached.lines().count(), 3, "{attached}");
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the CLI with `stdin` as its standard input.
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_privicore"))
            .args(args)
            .env("PRIVICORE_CLI_CONFIG", &self.config)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let feeder = stdin.map(|bytes| {
            let mut pipe = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                // The CLI may stop reading early when it fails; that is its answer.
                let _ = pipe.write_all(&bytes);
            })
        });
        let out = child.wait_with_output().unwrap();
        if let Some(feeder) = feeder {
            feeder.join().unwrap();
        }
        out
    }

    /// Runs the CLI, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn store_file(&self, path: &Path) -> String {
        let token = self
            .ok(&["store", path.to_str().unwrap()])
            .trim()
            .to_owned();
        assert!(token.starts_with("dtk-"), "{token}");
        token
    }

    fn store_stdin(&self, bytes: &[u8]) -> String {
        let out = self.run(&["store", "-", "--name", "piped.bin"], Some(bytes));
        assert!(
            out.status.success(),
            "store -: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(token.starts_with("dtk-"), "{token}");
        token
    }

    fn fetch_stdout(&self, token: &str) -> Vec<u8> {
        let out = self.run(&["fetch", token, "-o", "-"], None);
        assert!(
            out.status.success(),
            "fetch -o -: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Stores `content` as a file and through a pipe, fetches both into a file and to
    /// standard output, and checks every copy.
    fn round_trip(&self, content: &[u8]) {
        let original = self.path("original.bin");
        std::fs::write(&original, content).unwrap();
        let token = self.store_file(&original);
        let copy = self.path("copy.bin");
        let said = self.ok(&["fetch", &token, "-o", copy.to_str().unwrap()]);
        assert!(
            said.contains(&format!("{} bytes written", content.len())),
            "{said}"
        );
        assert!(std::fs::read(&copy).unwrap() == content, "file -> file");
        assert!(self.fetch_stdout(&token) == content, "file -> stdout");

        let piped = self.store_stdin(content);
        assert!(self.fetch_stdout(&piped) == content, "stdin -> stdout");
        let copy = self.path("piped-copy.bin");
        self.ok(&["fetch", &piped, "-o", copy.to_str().unwrap()]);
        assert!(std::fs::read(&copy).unwrap() == content, "stdin -> file");
    }
}

#[test]
fn small_files_and_pipes_round_trip_inline() {
    let setup = Setup::new(&[]);
    setup.round_trip(&random_payload(10_000));
    // The largest plaintext that still travels inline, and an empty one.
    setup.round_trip(&random_payload(1024 * 1024 - 28));
    setup.round_trip(b"");
}

#[test]
fn a_missing_input_file_is_an_error_that_names_it() {
    let setup = Setup::new(&[]);
    let missing = setup.path("no-such-file.txt");
    let out = setup.run(&["store", missing.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-file.txt"), "{err}");
}

#[test]
fn large_files_and_pipes_are_streamed_both_ways() {
    let setup = Setup::new(&[]);
    // Above the inline exchange maximum: uploaded (with a length from a file, chunked from
    // a pipe) and downloaded.
    setup.round_trip(&random_payload(3 * 1024 * 1024 + 5));
    // Stored inline, above the inline delivery maximum: downloaded.
    setup.round_trip(&random_payload(200_000));
}

/// Forwards every connection to `target`, flipping one bit of each response body at
/// `offset`: a download tampered with between the engine and the client.
fn tampering_proxy(listener: std::net::TcpListener, target: String, offset: usize) {
    use std::io::Read;
    use std::net::TcpStream;
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(&target) else {
                return;
            };
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
            });
            std::thread::spawn(move || {
                let mut header = Vec::new();
                let mut body_at: Option<usize> = None;
                let mut seen = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &mut buf[..n];
                    if body_at.is_none() {
                        header.extend_from_slice(chunk);
                        body_at = header
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|p| p + 4);
                    }
                    if let Some(flip) = body_at.map(|body| body + offset)
                        && (seen..seen + n).contains(&flip)
                    {
                        chunk[flip - seen] ^= 0x01;
                    }
                    seen += n;
                    if client.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

#[test]
fn a_tampered_download_leaves_no_output_file_and_fails_a_pipe() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}", proxy.local_addr().unwrap());
    let setup = Setup::new(&["--downstream-public-url", &public]);
    let endpoints: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(setup.dir.path().join("engine/run/endpoints.json")).unwrap(),
    )
    .unwrap();
    let downstream = endpoints["downstream"]
        .as_str()
        .expect("the engine names its download listener")
        .trim_start_matches("http://")
        .to_owned();
    tampering_proxy(proxy, downstream, 150_000);

    let original = setup.path("original.bin");
    std::fs::write(&original, random_payload(2 * 1024 * 1024)).unwrap();
    let token = setup.store_file(&original);

    let copy = setup.path("copy.bin");
    let out = setup.run(&["fetch", &token, "-o", copy.to_str().unwrap()], None);
    assert!(!out.status.success(), "a tampered download must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not verify"), "{err}");
    assert!(!copy.exists(), "no output file");
    let names: Vec<String> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".part")),
        "no temporary file left: {names:?}"
    );

    let out = setup.run(&["fetch", &token, "-o", "-"], None);
    assert!(
        !out.status.success(),
        "a tampered download to a pipe must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("discard"), "{err}");
}
