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
    }
    Ok(())
}
