use clap::{Parser, Subcommand};
use privicore::config::{ServeArgs, Settings};
use privicore::{logging, server};

#[derive(Parser)]
#[command(
    name = "privicore",
    version,
    about = "Self-hostable client-side tokenization vault"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (embedded defaults: SQLite and in-process bus under ./privicore-data).
    Serve(ServeArgs),
    /// Run a storage device as its own process, connected to the engine's embedded bus.
    StorageDevice {
        /// The configuration bundle from `download-device-configuration`.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Where the device keeps its keys and objects.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long, value_enum, default_value = "pretty", env = "PRIVICORE_LOG_FORMAT")]
        log_format: privicore::config::LogFormat,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args)?;
            logging::init(&settings.log);
            let running = server::Server::start(&settings).await?;
            server::shutdown_signal().await;
            tracing::info!("shutdown requested");
            running.shutdown().await;
        }
        Command::StorageDevice { config, data_dir, log_format } => {
            logging::init(&privicore::config::Log { format: log_format, level: "info".into() });
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                server::shutdown_signal().await;
                stop.cancel();
            });
            privicore::device_cmd::run(&config, &data_dir, shutdown).await?;
        }
    }
    Ok(())
}
