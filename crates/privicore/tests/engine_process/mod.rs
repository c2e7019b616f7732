//! The real binary as a child process, for tests that restart it or watch it refuse.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROOT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff";
/// Base64 works as well as hex.
pub const OTHER_KEY: &str = "3q2+7w3wrb7erb7v3q2+7w3wrb7erb7v3q2+7w3wrb4=";

pub struct Engine {
    pub child: Child,
    pub api: String,
    pub ws: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn serve(data_dir: &Path, root_key: Option<&str>, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_privicore"));
    command
        .args([
            "serve",
            "--api-port",
            "0",
            "--ws-port",
            "0",
            "--upstream-port",
            "0",
            "--downstream-port",
            "0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("PRIVICORE_REGISTRATIONS_PER_HOUR", "0")
        .env_remove("PRIVICORE_ROOT_KEY");
    if let Some(key) = root_key {
        command.env("PRIVICORE_ROOT_KEY", key);
    }
    // With PRIVICORE_TEST_STORE=postgres, every start on this directory uses one schema.
    match privicore_store_postgres::testing::harness_url() {
        Some(server) => command.env(
            "PRIVICORE_DATABASE_URL",
            privicore_store_postgres::testing::schema_url_for_dir(&server, data_dir),
        ),
        None => command.env_remove("PRIVICORE_DATABASE_URL"),
    };
    command
}

pub fn start(data_dir: &Path, root_key: Option<&str>) -> Engine {
    start_with(data_dir, root_key, &[])
}

pub fn start_with(data_dir: &Path, root_key: Option<&str>, extra: &[&str]) -> Engine {
    let endpoints = data_dir.join("run/endpoints.json");
    let _ = std::fs::remove_file(&endpoints);
    let child = serve(data_dir, root_key, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut engine = Engine {
        child,
        api: String::new(),
        ws: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&endpoints) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            engine.api = v["api"].as_str().unwrap().to_owned();
            engine.ws = v["ws"].as_str().unwrap().to_owned();
            return engine;
        }
        if let Some(exit) = engine.child.try_wait().unwrap() {
            panic!("the engine exited at start: {exit:?}");
        }
        assert!(Instant::now() < deadline, "the engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `serve`, which must refuse to start; what it printed on stderr.
pub fn refused(data_dir: &Path, root_key: Option<&str>) -> String {
    refused_with(data_dir, root_key, &[])
}

/// `refused`, on the embedded store whatever `PRIVICORE_TEST_STORE` says.
pub fn refused_embedded(data_dir: &Path, root_key: Option<&str>) -> String {
    refused_with(data_dir, root_key, &EMBEDDED)
}

fn refused_with(data_dir: &Path, root_key: Option<&str>, extra: &[&str]) -> String {
    let _ = std::fs::remove_file(data_dir.join("run/endpoints.json"));
    let mut child = serve(data_dir, root_key, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the engine started although its keys are not available");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "refusing to start exits non-zero");
    assert!(
        !data_dir.join("run/endpoints.json").exists(),
        "nothing listened"
    );
    stderr
}

/// Stops the engine with SIGTERM; how it exited.
pub fn terminate(mut engine: Engine) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &engine.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = engine.child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.path().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs `privicore operator …` on `data_dir`: its output, and whether it succeeded.
pub fn operator(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_privicore"))
        .arg("operator")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until the engine's endpoints file exists again (a sealed start writes it first).
pub fn endpoints(data_dir: &Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(data_dir.join("run/endpoints.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            return (
                v["api"].as_str().unwrap().to_owned(),
                v["ws"].as_str().unwrap().to_owned(),
            );
        }
        assert!(Instant::now() < deadline, "the engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// For tests about the embedded store's own file (`operator backup`, `privicore audit`,
/// keys at rest): the engine stays on it whatever `PRIVICORE_TEST_STORE` says.
const EMBEDDED: [&str; 2] = ["--database-url", "sqlite://"];

pub fn serve_embedded(data_dir: &Path, root_key: Option<&str>, extra: &[&str]) -> Command {
    serve(data_dir, root_key, &[&EMBEDDED[..], extra].concat())
}

pub fn start_embedded(data_dir: &Path, root_key: Option<&str>) -> Engine {
    start_with(data_dir, root_key, &EMBEDDED)
}

pub fn start_with_embedded(data_dir: &Path, root_key: Option<&str>, extra: &[&str]) -> Engine {
    start_with(data_dir, root_key, &[&EMBEDDED[..], extra].concat())
}
