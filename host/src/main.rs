//! `rill`: the server process.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use rill::config::Config;
use rill::engine::{Engine, EngineSettings};
use rill::http::{self, AppState};
use rill::plugin::PluginManager;

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
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rill: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config))
}

async fn run(config: Config) -> std::process::ExitCode {
    let engine = Engine::new(EngineSettings::from_config(&config));
    let plugins = PluginManager::new(engine.clone(), &config);
    if let Err(e) = plugins.start().await {
        tracing::error!("{e}");
        return std::process::ExitCode::FAILURE;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        engine: engine.clone(),
        plugins: plugins.clone(),
        started: std::time::Instant::now(),
        local: config.http.listen.to_string(),
    };
    let http = match http::serve(config.http.listen, state, async {
        let _ = stop_rx.await;
    })
    .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("HTTP listen {}: {e}", config.http.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!("rill {} ready", env!("CARGO_PKG_VERSION"));
    wait_for_stop().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    plugins.shutdown(config.shutdown_timeout).await;
    engine.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
