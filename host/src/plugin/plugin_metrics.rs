//! Metrics plugins set for themselves (`metric_set`, ABI 1.5): checked,
//! bounded, kept by plugin name (so they outlive generations), rendered at
//! scrape time by `/metrics`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use rill_abi::{RILL_ERR_BUSY, RILL_ERR_INVALID, RILL_METRIC_COUNTER, RILL_METRIC_GAUGE};

/// Series one plugin may hold.
pub const MAX_SERIES: usize = 1024;
const MAX_NAME: usize = 64;
const MAX_LABELS: usize = 4;
const MAX_VALUE: usize = 128;

/// One metric of one plugin.
#[derive(Debug, Clone)]
pub struct Family {
    pub counter: bool,
    /// Label pairs → value.
    pub series: BTreeMap<Vec<(String, String)>, f64>,
}

#[derive(Default)]
pub struct PluginMetrics {
    /// plugin → metric name → family.
    by_plugin: Mutex<BTreeMap<String, BTreeMap<String, Family>>>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `k=v,k2=v2` → pairs, or None when malformed.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for pair in text.split(',') {
        let (k, v) = pair.split_once('=')?;
        let bad = |c: char| c == '"' || c == '\\' || c.is_control();
        if !is_name(k) || k == "plugin" || v.len() > MAX_VALUE || v.chars().any(bad) {
            return None;
        }
        if out.iter().any(|(o, _): &(String, String)| o == k) {
            return None;
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    (out.len() <= MAX_LABELS).then_some(out)
}

impl PluginMetrics {
    /// Sets (or, for NaN, removes) a series; a status code on refusal.
    pub fn set(
        &self,
        plugin: &str,
        name: &str,
        labels: &str,
        kind: u32,
        value: f64,
    ) -> Result<(), i32> {
        let counter = match kind {
            RILL_METRIC_GAUGE => false,
            RILL_METRIC_COUNTER => true,
            _ => return Err(RILL_ERR_INVALID),
        };
        let labels = match (is_name(name), parse_labels(labels)) {
            (true, Some(l)) => l,
            _ => return Err(RILL_ERR_INVALID),
        };
        let mut all = self.by_plugin.lock();
        let mine = all.entry(plugin.to_owned()).or_default();
        if value.is_nan() {
            if let Some(f) = mine.get_mut(name) {
                f.series.remove(&labels);
                if f.series.is_empty() {
                    mine.remove(name);
                }
            }
            return Ok(());
        }
        let held: usize = mine.values().map(|f| f.series.len()).sum();
        let fam = mine.entry(name.to_owned()).or_insert_with(|| Family {
            counter,
            series: BTreeMap::new(),
        });
        if !fam.series.contains_key(&labels) && held >= MAX_SERIES {
            return Err(RILL_ERR_BUSY);
        }
        fam.series.insert(labels, value);
        Ok(())
    }

    /// A plugin is gone: its series too.
    pub fn forget(&self, plugin: &str) {
        self.by_plugin.lock().remove(plugin);
    }

    /// Every family, as (plugin, name, family).
    pub fn snapshot(&self) -> Vec<(String, String, Family)> {
        let all = self.by_plugin.lock();
        all.iter()
            .flat_map(|(p, fams)| {
                fams.iter()
                    .map(move |(n, f)| (p.clone(), n.clone(), f.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names_labels_and_caps() {
        let m = PluginMetrics::default();
        assert_eq!(
            m.set("relay", "jobs", "kind=pull,state=live", 0, 2.0),
            Ok(())
        );
        assert_eq!(m.set("relay", "Jobs", "", 0, 1.0), Err(RILL_ERR_INVALID));
        assert_eq!(
            m.set("relay", "jobs", "kind=\"x\"", 0, 1.0),
            Err(RILL_ERR_INVALID)
        );
        assert_eq!(
            m.set("relay", "jobs", "plugin=x", 0, 1.0),
            Err(RILL_ERR_INVALID)
        );
        assert_eq!(
            m.set("relay", "jobs", "a=1,a=2", 0, 1.0),
            Err(RILL_ERR_INVALID)
        );
        assert_eq!(m.set("relay", "jobs", "", 7, 1.0), Err(RILL_ERR_INVALID));
        for i in 1..MAX_SERIES {
            assert_eq!(m.set("relay", "n", &format!("i={i}"), 0, 1.0), Ok(()));
        }
        assert_eq!(m.set("relay", "n", "i=x", 0, 1.0), Err(RILL_ERR_BUSY));
        assert_eq!(m.set("relay", "n", "i=1", 0, f64::NAN), Ok(()));
        assert_eq!(m.set("relay", "n", "i=x", 0, 1.0), Ok(()));
        let snap = m.snapshot();
        let jobs = snap.iter().find(|(_, n, _)| n == "jobs").unwrap();
        assert_eq!(jobs.2.series.len(), 1);
        m.forget("relay");
        assert!(m.snapshot().is_empty());
    }
}
