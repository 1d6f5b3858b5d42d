//! `/metrics` in the Prometheus text format (prometheus-client). A collector
//! reads the engine and plugin state at scrape time, so the data path keeps
//! no extra counters for it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::engine::EngineTotals;
use crate::plugin::PluginInfo;

#[derive(Debug)]
struct Snapshot {
    totals: EngineTotals,
    plugins: Vec<PluginInfo>,
    /// HTTPS handshakes (completed, failed), when HTTPS is on.
    tls: Option<(u64, u64)>,
    udp: Vec<crate::plugin::UdpStats>,
    refusals: Vec<(&'static str, String, &'static str, u64)>,
    /// Hook answers and notifications by outcome.
    hooks: [(&'static str, &'static str, u64); 6],
    /// Plugins' storage: written, failed (no space, other), queued, and
    /// the free space last measured by path.
    storage: (u64, u64, u64, u64, Vec<(String, i64)>),
    /// HTTP objects plugins published: responses the host served from
    /// them, objects and expectations held.
    objects: (u64, u64),
    /// The cluster registry, when this node is in a cluster.
    cluster: Option<crate::cluster::ClusterStats>,
    /// What plugins set for themselves (`metric_set`).
    plugin_metrics: Vec<(String, String, crate::plugin::plugin_metrics::Family)>,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let t = &self.totals;
        gauge(
            &mut e,
            "rill_streams",
            "Streams in the registry",
            t.streams as i64,
        )?;
        gauge(
            &mut e,
            "rill_publishers",
            "Streams with a publisher attached",
            t.publishers as i64,
        )?;
        {
            let mut fam = e.encode_descriptor(
                "rill_subscribers",
                "Subscribers by protocol",
                None,
                MetricType::Gauge,
            )?;
            for (proto, n) in &t.subscribers {
                let labels = [("protocol", proto.as_str())];
                ConstGauge::new(*n as i64).encode(fam.encode_family(&labels)?)?;
            }
        }
        counter(&mut e, "rill_frames_in", "Frames published", t.frames_in)?;
        counter(
            &mut e,
            "rill_bytes_in",
            "Payload bytes published",
            t.bytes_in,
        )?;
        counter(
            &mut e,
            "rill_frames_out",
            "Frames taken by subscribers",
            t.frames_out,
        )?;
        counter(
            &mut e,
            "rill_bytes_out",
            "Payload bytes taken by subscribers",
            t.bytes_out,
        )?;
        counter(
            &mut e,
            "rill_frames_dropped",
            "Frames dropped for slow subscribers",
            t.frames_dropped,
        )?;
        {
            let mut fam = e.encode_descriptor(
                "rill_plugin_generation",
                "Current generation per plugin",
                None,
                MetricType::Gauge,
            )?;
            for p in &self.plugins {
                let labels = [("plugin", p.name.as_str())];
                ConstGauge::new(p.generation as i64).encode(fam.encode_family(&labels)?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "rill_plugin_reload_failures",
                "Plugin files refused",
                None,
                MetricType::Counter,
            )?;
            for p in &self.plugins {
                let labels = [("plugin", p.name.as_str())];
                ConstCounter::new(p.reload_failures).encode(fam.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "rill_udp_datagrams_in",
                "Datagrams handed to plugins, by instance UDP socket",
                (|u: &crate::plugin::UdpStats| u.received) as fn(&crate::plugin::UdpStats) -> u64,
            ),
            (
                "rill_udp_datagrams_out",
                "Datagrams sent, by instance UDP socket",
                |u| u.sent,
            ),
            (
                "rill_udp_dropped_oversize",
                "Datagrams dropped as longer than the receive slot",
                |u| u.oversize,
            ),
            (
                "rill_udp_dropped_queue_full",
                "Datagrams a plugin sent while the send queue was full",
                |u| u.refused,
            ),
        ] {
            let mut fam = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for u in &self.udp {
                let labels = [("plugin", u.plugin.as_str()), ("addr", u.addr.as_str())];
                ConstCounter::new(value(u)).encode(fam.encode_family(&labels)?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "rill_admission_refusals",
                "Publishes and plays refused, by action, protocol and reason",
                None,
                MetricType::Counter,
            )?;
            for (action, protocol, reason, n) in &self.refusals {
                let labels = [
                    ("action", *action),
                    ("protocol", protocol.as_str()),
                    ("reason", reason),
                ];
                ConstCounter::new(*n).encode(fam.encode_family(&labels)?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "rill_hook_calls",
                "Webhook calls, by kind (ask: on_publish/on_play; notify: *_done) and outcome",
                None,
                MetricType::Counter,
            )?;
            for (kind, outcome, n) in &self.hooks {
                let labels = [("kind", *kind), ("outcome", *outcome)];
                ConstCounter::new(*n).encode(fam.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut e,
            "rill_http_object_responses",
            "HTTP responses the host served from objects plugins published (LL-HLS parts)",
            self.objects.0,
        )?;
        gauge(
            &mut e,
            "rill_http_objects",
            "HTTP objects plugins published or announced, held by the host",
            self.objects.1 as i64,
        )?;
        let (written, no_space, failed, queued, free) = &self.storage;
        counter(
            &mut e,
            "rill_storage_written_bytes",
            "Bytes plugins wrote to files (recordings)",
            *written,
        )?;
        {
            let mut fam = e.encode_descriptor(
                "rill_storage_write_errors",
                "Plugins' file writes that failed, by reason",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in [("no_space", *no_space), ("io", *failed)] {
                ConstCounter::new(n).encode(fam.encode_family(&[("reason", reason)])?)?;
            }
        }
        gauge(
            &mut e,
            "rill_storage_queued_bytes",
            "Bytes plugins queued that wait for the disk",
            *queued as i64,
        )?;
        {
            let mut fam = e.encode_descriptor(
                "rill_storage_free_bytes",
                "Free space where plugins write (recording stops below its floor), as last measured",
                None,
                MetricType::Gauge,
            )?;
            for (path, v) in free {
                ConstGauge::new(*v).encode(fam.encode_family(&[("path", path.as_str())])?)?;
            }
        }
        if let Some(c) = self.cluster {
            gauge(
                &mut e,
                "rill_cluster_up",
                "1 while the cluster registry (Redis) answers, 0 while degraded",
                i64::from(c.up),
            )?;
            gauge(
                &mut e,
                "rill_cluster_owned_streams",
                "Streams this node claims in the cluster registry",
                c.owned as i64,
            )?;
            counter(
                &mut e,
                "rill_cluster_registry_errors",
                "Cluster registry calls that failed (unreachable, timed out, refused)",
                c.errors,
            )?;
        }
        if let Some((ok, failed)) = self.tls {
            counter(
                &mut e,
                "rill_tls_handshakes",
                "HTTPS handshakes completed",
                ok,
            )?;
            counter(
                &mut e,
                "rill_tls_handshake_failures",
                "HTTPS handshakes failed or timed out",
                failed,
            )?;
        }
        for (plugin, name, fam) in &self.plugin_metrics {
            let full = format!("rill_plugin_{plugin}_{name}");
            let kind = if fam.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let help = format!("Set by the {plugin} plugin");
            let mut enc = e.encode_descriptor(&full, &help, None, kind)?;
            for (labels, v) in &fam.series {
                let mut l: Vec<(&str, &str)> = vec![("plugin", plugin.as_str())];
                l.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let family = enc.encode_family(&l)?;
                if fam.counter {
                    ConstCounter::new(v.max(0.0)).encode(family)?;
                } else {
                    ConstGauge::new(*v).encode(family)?;
                }
            }
        }
        Ok(())
    }
}

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let admission = s.plugins.admission();
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Snapshot {
        cluster: s.cluster.stats(),
        objects: s.plugins.http_object_stats(),
        totals: s.engine.totals(),
        plugins: s.plugins.plugins().await,
        tls: s.tls.as_ref().map(|t| t.handshake_counts()),
        udp: s.plugins.udp_stats(),
        plugin_metrics: s.plugins.plugin_metrics(),
        refusals: admission.refusal_counts(),
        hooks: {
            let h = &admission.hook_stats;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            [
                ("ask", "allowed", n(&h.allowed)),
                ("ask", "refused", n(&h.refused)),
                ("ask", "failed", n(&h.failed)),
                ("notify", "delivered", n(&h.notified)),
                ("notify", "failed", n(&h.notify_failed)),
                ("notify", "dropped", n(&h.notify_dropped)),
            ]
        },
        storage: {
            use crate::storage::stats;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            (
                n(&stats::WRITTEN),
                n(&stats::NO_SPACE),
                n(&stats::FAILED),
                crate::storage::queued_total(),
                stats::FREE
                    .lock()
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            )
        },
    }));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        return super::problem(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed",
        );
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
