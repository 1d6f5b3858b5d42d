//! Plugin HTTP routes on the host's HTTP server. Like listeners, routes
//! belong to a plugin by name and move to each new generation.

use std::sync::Arc;

use arc_swap::ArcSwap;

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
}

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
    /// any method.
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<Route> {
        let t = self.table.load();
        let method_ok = |r: &Route| r.method.is_empty() || r.method.eq_ignore_ascii_case(method);
        let mut best: Option<(u8, usize, &Route)> = None;
        for r in t.iter().filter(|r| method_ok(r)) {
            let score = match kind(&r.pattern) {
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
        best.map(|(_, _, r)| r.clone())
    }
}
