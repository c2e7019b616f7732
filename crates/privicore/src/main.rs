use clap::{Parser, Subcommand};
use privicore::cli::{self, LocalProfile};
use privicore::config::{LogFormat, ServeArgs, Settings};
use privicore::{bench, logging, server};
use std::path::PathBuf;

/// glibc's allocator cost a tenth of the engine's CPU under load (many threads, many small
/// short-lived buffers); mimalloc handles that pattern with far less contention.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc hands freed memory back to the OS only when some thread calls into it again
/// after a delay; memory freed just before a thread idles (a blocking-pool thread after a
/// 19 MiB password hash) stayed resident for good, 25 MiB per registration. One collection
/// a second returns what is due.
async fn return_freed_memory() {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        // SAFETY: mi_collect takes no pointers; it may run on any thread at any time.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}

#[derive(Parser)]
#[command(
    name = "privicore",
    version,
    about = "Self-hostable client-side tokenization vault"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print listings and `status` as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Args)]
struct ProfileFile {
    /// The local profile file (credentials and keys, mode 0600).
    #[arg(long, global = true, env = "PRIVICORE_CLI_CONFIG")]
    profile_file: Option<PathBuf>,
}

impl ProfileFile {
    fn path(&self) -> PathBuf {
        self.profile_file.clone().unwrap_or_else(cli::default_path)
    }

    fn load(&self) -> anyhow::Result<LocalProfile> {
        LocalProfile::load(&self.path())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Is the engine up, who am I, and how are my devices and their replicas.
    Status {
        /// The engine's API (default: the profile's, else http://127.0.0.1:8009).
        #[arg(long)]
        api: Option<String>,
        #[command(flatten)]
        file: ProfileFile,
    },
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    ///
    /// For example: `privicore completions bash > ~/.local/share/bash-completion/completions/privicore`,
    /// or `privicore completions zsh > ~/.zfunc/_privicore`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The profile's data tokens.
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
        #[command(flatten)]
        file: ProfileFile,
    },
    /// Run the engine (embedded defaults: SQLite and in-process bus under ./privicore-data).
    Serve(Box<ServeArgs>),
    /// Run a storage device as its own process, connected to the engine's embedded bus.
    StorageDevice {
        /// The configuration bundle from `download-device-configuration`.
        #[arg(long)]
        config: PathBuf,
        /// Where the device keeps its keys and objects.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(
            long,
            value_enum,
            default_value = "pretty",
            env = "PRIVICORE_LOG_FORMAT"
        )]
        log_format: LogFormat,
    },
    /// Run an authenticator as its own process in this terminal: lists the ballots put to
    /// the device and answers them with one key (y / n; arrows or j / k move; q quits).
    Authenticator {
        /// The device's configuration bundle (`devices attach --authenticator` writes one).
        #[arg(long)]
        config: PathBuf,
        /// Where the device key pair is kept (created on first start, mode 0600); default:
        /// the bundle's path with `.key` appended.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Manage the local profile.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
        #[command(flatten)]
        file: ProfileFile,
    },
    /// Manage the profile's devices (storage devices, authenticators).
    Devices {
        #[command(subcommand)]
        action: DevicesAction,
        #[command(flatten)]
        file: ProfileFile,
    },
    /// Encrypt a file locally and store it; prints the data token. Up to 1 MiB of
    /// ciphertext travels inline, larger files are streamed to the upstream listener.
    Store {
        /// The file to store; `-` reads standard input (inline if it ends within the inline
        /// limit, otherwise streamed with its length unknown).
        file: PathBuf,
        #[arg(long, default_value = "/files")]
        context: String,
        /// The file name recorded with the token (default: the file's own name, or `stdin`).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        profile: ProfileFile,
    },
    /// Fetch a data token and decrypt it locally into a file. The file appears only once
    /// the data's integrity tag verified (until then it is a temporary file beside it), and
    /// is readable by its owner only.
    Fetch {
        token: String,
        /// Where to write the plaintext; `-` writes to standard output as the data arrives
        /// (the tag is checked at the end: if it fails, the command exits non-zero and
        /// everything it wrote must be discarded).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        #[command(flatten)]
        profile: ProfileFile,
    },
    /// OAuth applications: register, list, authorize, token.
    App {
        #[command(subcommand)]
        action: cli::app::AppAction,
        #[command(flatten)]
        profile: ProfileFile,
    },
    /// Directories: create, invite, users, devices.
    Directory {
        #[command(subcommand)]
        action: cli::directory::DirectoryAction,
        #[command(flatten)]
        profile: ProfileFile,
    },
    /// Measure store and fetch flows over real HTTP and WebSocket.
    Bench(bench::BenchArgs),
    /// Administer the keys of an engine on this machine (over `<data_dir>/run/operator.sock`).
    Operator {
        #[command(subcommand)]
        action: privicore::operator::cli::Action,
        #[arg(
            long,
            env = "PRIVICORE_DATA_DIR",
            default_value = "./privicore-data",
            global = true
        )]
        data_dir: PathBuf,
    },
    /// The audit log of governance decisions: check its chain, or show its last records
    /// (reads `<data_dir>/privicore.db`, or the PostgreSQL database of --database-url,
    /// directly, with or without a running engine).
    Audit {
        #[command(subcommand)]
        action: privicore::audit::Action,
        /// The engines' PostgreSQL database (postgres://…); the embedded store otherwise.
        #[arg(
            long,
            env = "PRIVICORE_DATABASE_URL",
            hide_env_values = true,
            global = true
        )]
        database_url: Option<String>,
        #[arg(
            long,
            env = "PRIVICORE_DATA_DIR",
            default_value = "./privicore-data",
            global = true
        )]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ProfileAction {
    /// Register a profile, generate and register its keys, save everything locally.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, env = "PRIVICORE_PASSWORD")]
        password: String,
        #[arg(long, default_value = "http://127.0.0.1:8009")]
        api: String,
        #[arg(long, default_value = "ws://127.0.0.1:8083")]
        ws: String,
    },
}

#[derive(Subcommand)]
enum TokensAction {
    /// One page of the profile's tokens, newest first, filtered by the engine.
    List(cli::listing::TokenFilters),
}

#[derive(Subcommand)]
enum DevicesAction {
    /// The profile's devices (every role and status), one page.
    List {
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// 1 to 100.
        #[arg(long, default_value_t = 25)]
        per_page: u32,
    },
    /// Request, approve and register storage devices hosted by the engine, or (with
    /// `--authenticator`) one authenticator that runs as its own process.
    Attach {
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Attach one authenticator instead: request, approve, give it the authenticator
        /// role and write its configuration bundle for `privicore authenticator --config`.
        #[arg(long)]
        authenticator: bool,
        /// The authenticator's device name.
        #[arg(long, default_value = "authenticator", requires = "authenticator")]
        name: String,
        /// Where to write the authenticator's bundle (mode 0600); default:
        /// `privicore-authenticator-<deviceIdentifier>.json` here.
        #[arg(long, requires = "authenticator")]
        bundle: Option<PathBuf>,
    },
}

fn quiet_logs() {
    logging::init(&privicore::config::Log {
        format: LogFormat::Pretty,
        level: "warn".into(),
    });
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:?}");
            if let Some(hint) = cli::hints::hint(&error) {
                eprintln!("hint: {hint}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let runtime = match &cli.command {
        // The load generator shares the machine with the engine it measures: one thread
        // keeps its own cost (and its cross-thread wake-ups) low.
        Command::Bench(args) if args.client_threads <= 1 => {
            tokio::runtime::Builder::new_current_thread()
        }
        Command::Bench(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(args.client_threads);
            builder
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let json = cli.json;
    match cli.command {
        Command::Status { api, file } => {
            quiet_logs();
            let profile = match file.load() {
                Ok(profile) => Some(profile),
                Err(e) if e.downcast_ref::<cli::NoProfile>().is_some() => None,
                Err(e) => return Err(e),
            };
            let api = api
                .or_else(|| profile.as_ref().map(|p| p.api.clone()))
                .unwrap_or_else(|| "http://127.0.0.1:8009".into());
            let report = cli::status::gather(&api, profile.as_ref()).await?;
            cli::status::print(&report, json)?;
            // Scripts: 0 while the engine serves (ok or degraded), 1 when it does not.
            if report["httpStatus"] != 200 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "privicore",
                &mut std::io::stdout(),
            );
        }
        Command::Tokens {
            action: TokensAction::List(filters),
            file,
        } => {
            quiet_logs();
            let answer = cli::listing::tokens(&file.load()?, &filters).await?;
            cli::listing::print_tokens(&answer, json)?;
        }
        Command::Devices {
            action: DevicesAction::List { page, per_page },
            file,
        } => {
            quiet_logs();
            let answer = cli::listing::devices(&file.load()?, page, per_page).await?;
            cli::listing::print_devices(&answer, json)?;
        }
        Command::Serve(args) => {
            let settings = Settings::resolve(&args)?;
            logging::init(&settings.log);
            if let Some(file) = &args.restore {
                // A backup holds the embedded store; it has nowhere to go in PostgreSQL.
                if let privicore::config::MetadataBackend::Postgres(_) =
                    settings.metadata_store()?
                {
                    anyhow::bail!(
                        "--restore unpacks the embedded store; with a PostgreSQL database_url \
                         restore the database with its own tools (pg_restore)"
                    );
                }
                privicore::operator::backup::restore(file, &settings.data_dir)?;
            }
            let Some(startup) = privicore::operator::sealed::startup(&settings).await? else {
                tracing::info!("shutdown requested while sealed");
                return Ok(std::process::ExitCode::SUCCESS);
            };
            let running = server::Server::start_with(&settings, startup).await?;
            tokio::spawn(return_freed_memory());
            server::shutdown_signal().await;
            tracing::info!("shutdown requested");
            running.shutdown().await;
        }
        Command::StorageDevice {
            config,
            data_dir,
            log_format,
        } => {
            logging::init(&privicore::config::Log {
                format: log_format,
                level: "info".into(),
            });
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                server::shutdown_signal().await;
                stop.cancel();
            });
            privicore::device_cmd::run(&config, &data_dir, shutdown).await?;
        }
        Command::Authenticator { config, key_file } => {
            // No log subscriber: the terminal is the interface, and logs (even with
            // RUST_LOG set) would tear it. What matters shows on screen.
            privicore::authenticator::run(&config, key_file.as_deref()).await?;
        }
        Command::Profile {
            action:
                ProfileAction::Create {
                    username,
                    password,
                    api,
                    ws,
                },
            file,
        } => {
            quiet_logs();
            let path = file.path();
            let profile = cli::create_profile(&path, &api, &ws, &username, &password).await?;
            println!(
                "profile {} created; keys and credentials saved to {}",
                profile.profile_id,
                path.display()
            );
        }
        Command::Devices {
            action:
                DevicesAction::Attach {
                    authenticator: true,
                    name,
                    bundle,
                    ..
                },
            file,
        } => {
            quiet_logs();
            let (id, path) =
                cli::attach_authenticator(&file.load()?, &name, bundle.as_deref()).await?;
            println!(
                "authenticator {id} attached; bundle written to {}",
                path.display()
            );
            println!(
                "run it with: privicore authenticator --config {}",
                path.display()
            );
        }
        Command::Devices {
            action: DevicesAction::Attach { count, .. },
            file,
        } => {
            quiet_logs();
            for id in cli::attach_devices(&file.load()?, count).await? {
                println!("storage device {id} attached");
            }
        }
        Command::Store {
            file,
            context,
            name,
            profile,
        } => {
            quiet_logs();
            let source = cli::Source::parse(&file);
            let stored = cli::store(&profile.load()?, &source, &context, name.as_deref()).await?;
            println!("{}", stored.token);
        }
        Command::Fetch {
            token,
            output,
            profile,
        } => {
            quiet_logs();
            let target = cli::Target::parse(&output);
            let fetched = cli::fetch(&profile.load()?, &token, &target).await?;
            // Standard output may be the data itself: the summary goes to standard error then.
            match target {
                cli::Target::File(path) => println!(
                    "{} bytes written to {}",
                    fetched.plaintext_len,
                    path.display()
                ),
                cli::Target::Stdout => {
                    eprintln!("{} bytes written to standard output", fetched.plaintext_len)
                }
            }
        }
        Command::Directory { action, profile } => {
            quiet_logs();
            let columns = cli::directory::columns(&action);
            let out = cli::directory::run(action, || profile.load()).await?;
            match columns {
                Some(columns) => cli::output::listing(&out, columns, json)?,
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
        }
        Command::App { action, profile } => {
            quiet_logs();
            let list = matches!(action, cli::app::AppAction::List);
            let out = cli::app::run(action, || profile.load()).await?;
            if list {
                cli::output::listing(&out, cli::app::COLUMNS, json)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
        Command::Bench(args) => {
            quiet_logs();
            bench::run(args).await?;
        }
        Command::Operator { action, data_dir } => {
            quiet_logs();
            privicore::operator::cli::run(data_dir, action).await?;
        }
        Command::Audit {
            action,
            data_dir,
            database_url,
        } => {
            quiet_logs();
            let code = match privicore::audit::run(data_dir, database_url, action).await {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("Error: {error:#}");
                    privicore::audit::TROUBLE
                }
            };
            if code != privicore::audit::INTACT {
                std::process::exit(code);
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
