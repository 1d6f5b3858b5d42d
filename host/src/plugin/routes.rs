//! Plugin HTTP routes on the host's HTTP server. Like listeners, routes
//! belong to a plugin by name and move to each new generation, except
//! under a path an older generation pinned (`http_pin`): requests there
//! stay with the generation that holds their state until it unpins.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use rill_abi::*;

use super::instance::{Instance, RouteDecl};

#[derive(Clone)]
pub(crate) struct Route {
    pub plugin: String,
    pub method: String,
    pub pattern: String,
    pub route_id: u32,
    /// `RILL_ROUTE_STREAM`: served on a connection the host owns.
    pub stream: bool,
    pub inst: Arc<Instance>,
}

#[derive(Default)]
pub(crate) struct Routes {
    table: ArcSwap<Vec<Route>>,
    /// Pinned URL spaces: path → the instances that pinned it, newest last.
    pins: DashMap<String, Vec<Arc<Instance>>>,
}

/// The most pins one instance holds.
const MAX_PINS: usize = 65_536;
/// The longest path a pin takes.
const MAX_PIN_PATH: usize = 1024;

enum Kind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
}

fn kind(pattern: &str) -> Kind<'_> {
    if let Some(p) = pattern.strip_suffix('*') {
        Kind::Prefix(p)
    } else if let Some(s) = pattern.strip_prefix('*') {
        Kind::Suffix(s)
    } else {
        Kind::Exact(pattern)
    }
}

impl Routes {
    /// The plugin's routes become `decls`, served by `inst`.
    pub(crate) fn activate(&self, inst: &Arc<Instance>, decls: Vec<RouteDecl>) {
        self.table.rcu(|t| {
            let mut next: Vec<Route> = t
                .iter()
                .filter(|r| r.plugin != inst.name)
                .cloned()
                .collect();
            next.extend(decls.iter().map(|d| Route {
                plugin: inst.name.clone(),
                method: d.method.clone(),
                pattern: d.pattern.clone(),
                route_id: d.route_id,
                stream: d.stream,
                inst: inst.clone(),
            }));
            next
        });
    }

    pub(crate) fn remove_plugin(&self, name: &str) {
        self.table.rcu(|t| {
            t.iter()
                .filter(|r| r.plugin != name)
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Whether a route registered for exactly `method` (not "any") matches
    /// `path`: plugins that answer `OPTIONS` themselves (WHIP/WHEP) get the
    /// preflights the host would otherwise answer.
    pub(crate) fn has_explicit(&self, method: &str, path: &str) -> bool {
        self.find(method, path)
            .is_some_and(|r| r.method.eq_ignore_ascii_case(method))
    }

    /// The route for a request: an exact path first, then the longest
    /// prefix, then the longest suffix; a route with an empty method takes
    /// any method. A path an instance of the route's plugin pinned goes to
    /// that instance, by its own routes.
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<Route> {
        let t = self.table.load();
        let r = best(t.iter(), |r| (&r.method, &r.pattern), method, path)?;
        let Some(inst) = self.pinned(&r.plugin, path) else {
            return Some(r.clone());
        };
        if Arc::ptr_eq(&inst, &r.inst) {
            return Some(r.clone());
        }
        let decls = inst.routes.lock();
        let Some(d) = best(decls.iter(), |d| (&d.method, &d.pattern), method, path) else {
            return Some(r.clone());
        };
        Some(Route {
            plugin: r.plugin.clone(),
            method: d.method.clone(),
            pattern: d.pattern.clone(),
            route_id: d.route_id,
            stream: d.stream,
            inst: inst.clone(),
        })
    }

    /// The newest instance of `plugin` that pinned `path` or a path it
    /// continues after a `/` or `.` (the longest such path first).
    fn pinned(&self, plugin: &str, path: &str) -> Option<Arc<Instance>> {
        if self.pins.is_empty() {
            return None;
        }
        stems(path).find_map(|stem| {
            let holders = self.pins.get(stem)?;
            holders.iter().rev().find(|h| h.name == plugin).cloned()
        })
    }

    /// `http_pin`: pins (`on`) or unpins `path` to `inst`.
    pub(crate) fn pin(&self, inst: &Arc<Instance>, path: &str, on: bool) -> i32 {
        if !path.starts_with('/') || path.len() > MAX_PIN_PATH {
            return RILL_ERR_INVALID;
        }
        let mut mine = inst.pins.lock();
        let Some(mine) = mine.as_mut() else {
            return RILL_ERR_CLOSED;
        };
        if on {
            if mine.contains(path) {
                return RILL_OK;
            }
            if mine.len() >= MAX_PINS {
                return RILL_ERR_BUSY;
            }
            mine.insert(path.to_owned());
            self.pins
                .entry(path.to_owned())
                .or_default()
                .push(inst.clone());
            RILL_OK
        } else {
            if !mine.remove(path) {
                return RILL_ERR_NOT_FOUND;
            }
            self.unpin_one(inst, path);
            RILL_OK
        }
    }

    fn unpin_one(&self, inst: &Arc<Instance>, path: &str) {
        self.pins.remove_if_mut(path, |_, holders| {
            holders.retain(|h| !Arc::ptr_eq(h, inst));
            holders.is_empty()
        });
    }

    /// Drops every pin of `inst`, and takes no more: requests under them
    /// go to the current generation from now on.
    pub(crate) fn unpin_all(&self, inst: &Arc<Instance>) {
        let mine: HashSet<String> = inst.pins.lock().take().unwrap_or_default();
        for path in mine {
            self.unpin_one(inst, &path);
        }
    }
}

/// The best of `routes` for `method` on `path` (see [`Routes::find`]).
fn best<'a, T>(
    routes: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> (&String, &String),
    method: &str,
    path: &str,
) -> Option<&'a T> {
    let mut best: Option<(u8, usize, &T)> = None;
    for r in routes {
        let (m, pattern) = key(r);
        if !(m.is_empty() || m.eq_ignore_ascii_case(method)) {
            continue;
        }
        let score = match kind(pattern) {
            Kind::Exact(p) if p == path => Some((3, p.len())),
            Kind::Prefix(p) if path.starts_with(p) => Some((2, p.len())),
            Kind::Suffix(s) if path.ends_with(s) => Some((1, s.len())),
            _ => None,
        };
        if let Some((k, len)) = score {
            if best.is_none_or(|(bk, bl, _)| (k, len) > (bk, bl)) {
                best = Some((k, len, r));
            }
        }
    }
    best.map(|(_, _, r)| r)
}

/// The paths a pin may hold `path` by, longest first: `path` itself, then
/// each prefix ending before a `/` or `.`.
fn stems(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once(path).chain(
        path.char_indices()
            .rev()
            .filter(|&(i, c)| i > 0 && (c == '/' || c == '.'))
            .map(|(i, _)| &path[..i]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_holds_its_path_and_what_continues_it_after_a_slash_or_dot() {
        let all: Vec<_> = stems("/live/x/p12.3.m4s").collect();
        assert_eq!(
            all,
            [
                "/live/x/p12.3.m4s",
                "/live/x/p12.3",
                "/live/x/p12",
                "/live/x",
                "/live"
            ]
        );
        assert_eq!(stems("/live/x.m3u8").nth(1), Some("/live/x"));
        // `/live/x` does not hold `/live/x2.m3u8`.
        assert!(!stems("/live/x2.m3u8").any(|p| p == "/live/x"));
        assert_eq!(stems("/").collect::<Vec<_>>(), ["/"]);
    }
}
