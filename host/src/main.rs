//! `rill`: the server process.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use rill::config::Config;
use rill::engine::{Engine, EngineSettings};
use rill::http::{self, AppState, SetLogLevel};
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
    let set_log_level = init_logging(&config);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rill: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config, set_log_level))
}

/// Logs to stderr through tracing: plain text without colour when not on a
/// terminal (journald adds the time), or JSON. Returns how to change the
/// level while running. `RUST_LOG`, when set, wins over `log.level`.
fn init_logging(config: &Config) -> SetLogLevel {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.clone());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    match config.log.format {
        rill::config::LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
        rill::config::LogFormat::Text => registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .init(),
    }
    std::sync::Arc::new(move |level: &str| {
        let f = EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}"))?;
        handle.reload(f).map_err(|e| e.to_string())
    })
}

async fn run(config: Config, set_log_level: SetLogLevel) -> std::process::ExitCode {
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
        config: std::sync::Arc::new(parking_lot::Mutex::new(config.clone())),
        set_log_level,
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
