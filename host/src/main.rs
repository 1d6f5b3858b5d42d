//! `rill`: the server process.

use std::path::PathBuf;

use clap::Parser;
use rill::config::Config;
use rill::engine::{Engine, EngineSettings};

#[derive(Parser, Debug)]
#[command(name = "rill", version, about = "Rill live-streaming media server")]
struct Args {
    /// The config file (YAML). Every setting has a default.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rill: {}:\n{e}", p.display());
                return std::process::ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Err(e) = config.apply_env(std::env::vars()) {
        eprintln!("rill: environment:\n{e}");
        return std::process::ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log.level))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rill: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let engine = Engine::new(EngineSettings::from_config(&config));
        tracing::info!("rill {} started", env!("CARGO_PKG_VERSION"));
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        engine.shutdown().await;
    });
    std::process::ExitCode::SUCCESS
}
