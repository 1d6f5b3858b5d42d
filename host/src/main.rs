//! `rill`: the server process.
//!
//! systemd integration (Type=notify): READY=1 once the HTTP listener (and the
//! HTTPS one, with `http.tls`) is bound and the plugins are loaded;
//! RELOADING=1 … READY=1 around a SIGHUP reload; STOPPING=1 on SIGTERM/SIGINT;
//! WATCHDOG=1 at half of `WatchdogSec`.
//! SIGTERM/SIGINT stop accepting, let sessions drain up to
//! `shutdown_timeout`, and exit 0; a second signal exits at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rill::config::Config;
use rill::engine::{Engine, EngineSettings};
use rill::http;
use rill::plugin::PluginManager;
use rill::server::{AppState, SetLogLevel};
use sd_notify::NotifyState;

/// mimalloc, not glibc's malloc: per-request state is allocated and freed
/// at a high rate (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug)]
#[command(name = "rill", version, about = "Rill live-streaming media server")]
struct Args {
    /// The config file (YAML). Every setting has a default; RILL_* environment
    /// variables override single keys (e.g. RILL_HTTP_LISTEN).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Validate FILE (and the environment overrides), print each problem
    /// with its key path, and exit: 0 when valid.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

/// The config from `path` (or the defaults) with the environment applied.
fn load(path: Option<&Path>) -> Result<Config, String> {
    let mut c = match path {
        Some(p) => Config::load(p).map_err(|e| format!("{}:\n{e}", p.display()))?,
        None => Config::default(),
    };
    c.apply_env(std::env::vars())
        .map_err(|e| format!("environment:\n{e}"))?;
    Ok(c)
}

/// `--check-config`: the file's problems, and what only running would find.
fn check_config(path: &Path) -> ExitCode {
    match load(Some(path)) {
        Ok(c) if !c.plugins_dir.is_dir() => {
            eprintln!(
                "{}:\nplugins_dir: {} is not a directory",
                path.display(),
                c.plugins_dir.display()
            );
            ExitCode::from(1)
        }
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(p) = &args.check_config {
        return check_config(p);
    }
    let config = match load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rill: {e}");
            return ExitCode::from(2);
        }
    };
    let set_log_level = init_logging(&config);
    let nofile = rill::net::fds::raise_limit();
    tracing::debug!(nofile, "open-file limit");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rill: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args.config, config, set_log_level))
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

fn notify(states: &[NotifyState]) {
    // Outside systemd there is no socket: nothing to do.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify: {e}");
    }
}

async fn run(path: Option<PathBuf>, config: Config, set_log_level: SetLogLevel) -> ExitCode {
    let engine = Engine::new(EngineSettings::from_config(&config));
    // The certificate first: plugins' TLS listeners use it too.
    let tls = match config.http.tls.files() {
        Some(_) => match http::tls::Tls::new(&config.http.tls) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let db = rill::db::Db::open(
        &config.database.url,
        &config.state_dir,
        config.cluster.node_id(),
    );
    // Before the plugins: it follows the engine's events from the first
    // publisher on. Redis need not be up (the cluster is degraded until it is).
    let cluster = match rill::cluster::Cluster::start(&config.cluster, &engine) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let plugins = PluginManager::new(
        engine.clone(),
        &config,
        tls.clone(),
        db.clone(),
        cluster.clone(),
    );
    if let Err(e) = plugins.start().await {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        engine: engine.clone(),
        plugins: plugins.clone(),
        started: std::time::Instant::now(),
        local: config.http.listen.to_string(),
        secure: false,
        config: std::sync::Arc::new(parking_lot::Mutex::new(config.clone())),
        set_log_level,
        tls: tls.clone(),
        db,
        cluster: cluster.clone(),
    };
    let https = tls.map(|t| (config.http.tls.listen, t));
    let http = match http::serve(config.http.listen, https, state.clone(), async {
        let _ = stop_rx.await;
    })
    .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    start_watchdog();
    tracing::info!("rill {} ready", env!("CARGO_PKG_VERSION"));
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&state, path.as_deref()).await,
        }
    }

    tracing::info!("shutting down");
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    // A second signal: stop waiting.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("rill: second signal, exiting now");
        std::process::exit(1);
    });
    let timeout = state.config.lock().shutdown_timeout;
    // In order: no new sessions; this node leaves the cluster; streams end
    // (players get what is queued, then the end of stream); sessions
    // drain; plugins are destroyed.
    plugins.stop_accepting().await;
    // Leave the registry first, so other nodes stop sending players here
    // and a publisher that moves on is found at its new node at once.
    cluster.shutdown().await;
    engine.shutdown().await;
    plugins.finish(timeout).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGHUP: re-read the config file and apply what can change live.
async fn reload(state: &AppState, path: Option<&Path>) {
    let now = NotifyState::monotonic_usec_now().ok();
    let mut states = vec![NotifyState::Reloading];
    states.extend(now);
    notify(&states);
    match load(path) {
        Ok(c) => match state.apply_config(c).await {
            Ok(r) => tracing::info!(
                restart_required = ?r.restart_required,
                plugins_reloaded = ?r.plugins_reloaded,
                "config reloaded"
            ),
            Err(e) => tracing::error!("config reload: {e}"),
        },
        Err(e) => tracing::error!("config reload refused, keeping the running config: {e}"),
    }
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// WATCHDOG=1 at half the interval systemd asked for.
fn start_watchdog() {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let every = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
}
