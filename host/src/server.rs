//! The running server's shared state, and applying a new config to it
//! (SIGHUP and `PUT /api/v1/config` go through the same path).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::Config;
use crate::engine::{Engine, EngineSettings};
use crate::http::tls::{self, Tls};
use crate::plugin::PluginManager;

/// Changes the log filter while running; Err names what is wrong.
pub type SetLogLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub plugins: PluginManager,
    pub started: std::time::Instant,
    /// The HTTP listen address, as plugins see it (`conn_local_addr`).
    pub local: String,
    /// Whether this server speaks HTTPS (`RILL_HTTP_TLS` for plugins).
    pub secure: bool,
    /// The running config (what `GET /api/v1/config` shows).
    pub config: Arc<Mutex<Config>>,
    pub set_log_level: SetLogLevel,
    /// The HTTPS certificate, when `http.tls` is on.
    pub tls: Option<Tls>,
    /// The database (the recording index).
    pub db: crate::db::Db,
    /// The cluster registry (disabled without `cluster.redis`).
    pub cluster: crate::cluster::Cluster,
}

/// What applying a config did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    /// Keys that changed but take effect only after a restart.
    pub restart_required: Vec<&'static str>,
    /// Plugins that got a new generation for their new section.
    pub plugins_reloaded: Vec<String>,
}

impl AppState {
    /// Applies what can change live (log level, publish/subscribe settings,
    /// drain timeout, plugin sections, the HTTPS certificate, re-read from
    /// its files every time); reports what needs a restart.
    pub async fn apply_config(&self, new: Config) -> Result<ApplyReport, String> {
        let old = self.config.lock().clone();
        let mut report = ApplyReport::default();
        let restart = [
            ("http.listen", new.http.listen != old.http.listen),
            ("plugins_dir", new.plugins_dir != old.plugins_dir),
            ("state_dir", new.state_dir != old.state_dir),
            ("storage.roots", new.storage.roots != old.storage.roots),
            ("database.url", new.database.url != old.database.url),
            ("cluster", new.cluster != old.cluster),
            (
                "dispatcher_workers",
                new.dispatcher_workers != old.dispatcher_workers,
            ),
            ("log.format", new.log.format != old.log.format),
            // Turning HTTPS on or off, or moving it.
            (
                "http.tls",
                new.http.tls.files().is_some() != self.tls.is_some(),
            ),
            (
                "http.tls.listen",
                self.tls.is_some()
                    && new.http.tls.files().is_some()
                    && new.http.tls.listen != old.http.tls.listen,
            ),
        ];
        report.restart_required = restart
            .iter()
            .filter(|(_, c)| *c)
            .map(|(k, _)| *k)
            .collect();
        // The certificate files, read again (a renewal rewrites them in
        // place); refused as a whole config if they no longer load.
        let certs = match (&self.tls, new.http.tls.files()) {
            (Some(_), Some(_)) => Some(tls::load(&new.http.tls).map_err(|e| e.to_string())?),
            _ => None,
        };
        if new.log.level != old.log.level {
            (self.set_log_level)(&new.log.level)?;
        }
        if let (Some(running), Some(certs), Some((cert, _))) =
            (&self.tls, certs, new.http.tls.files())
        {
            running.set(certs);
            tracing::info!(cert = %cert.display(), "HTTPS certificate loaded for new connections");
        }
        let mut settings = EngineSettings::from_config(&new);
        settings.dispatcher_workers = self.engine.settings().dispatcher_workers;
        self.engine.update_settings(settings);
        *self.config.lock() = new.clone();
        report.plugins_reloaded = self.plugins.update_config(&new).await;
        for k in &report.restart_required {
            tracing::warn!("config: {k} changed; it takes effect after a restart");
        }
        Ok(report)
    }
}
