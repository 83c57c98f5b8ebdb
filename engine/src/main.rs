//! `corestream`: the relay engine's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corestream::config::{Config, Loaded};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corestream",
    version,
    about = "Thread-per-core live-stream relay engine"
)]
struct Cli {
    /// Configuration file (YAML). Without it the embedded default (config/corestream.yaml) is used.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (the default).
    Run,
    /// Load and validate the configuration, print a summary, and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(loaded),
        Command::CheckConfig => {
            println!("{}: ok", loaded.source.name());
            println!("{:#?}", loaded.config);
            ExitCode::SUCCESS
        }
    }
}

fn run(loaded: Loaded) -> ExitCode {
    let filter = EnvFilter::try_from_env("CORESTREAM_LOG")
        .unwrap_or_else(|_| EnvFilter::new(loaded.config.log_level.as_str()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    tracing::info!(config = %loaded.source.name(), "starting");
    match corestream::runtime::run(loaded.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("corestream: {e}");
            ExitCode::FAILURE
        }
    }
}
