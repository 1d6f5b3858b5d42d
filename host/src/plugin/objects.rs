//! Objects the host serves for plugins (`http_publish`, `http_unpublish`,
//! `http_expect`, ABI 1.8): immutable HTTP bodies that many clients fetch
//! at the same moment (an LL-HLS part and its init segment). The HTTP
//! server answers them itself, without a plugin session per request, and a
//! request for an expected one waits here until it is published. A part's
//! release then wakes each waiting request's own connection task, instead
//! of a plugin session per request that the plugin wakes and that answers
//! through the host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::*;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Most objects and expectations an instance holds.
pub(crate) const MAX_OBJECTS: usize = 65_536;
/// Longest path, stream and content type.
const MAX_PATH: usize = 1024;
const MAX_CONTENT_TYPE: usize = 128;
/// Longest wait an expectation may announce.
pub(crate) const MAX_EXPECT_MS: u32 = 60_000;
/// Most requests held for one expected object; more go to the plugin
/// (which has its own cap).
const MAX_HELD: usize = 20_000;

/// Who published an object: the instance, by the address of its `Arc`
/// (unique while it lives; its objects go before it does).
pub(crate) type Owner = usize;

/// Whose an object is, and what admits a request for it.
pub(crate) struct Target {
    pub owner: Owner,
    /// The instance's name: what admission records as the protocol.
    pub plugin: Arc<str>,
    /// The stream a play of which admits a request.
    pub stream: Box<str>,
}

impl Target {
    fn new(owner: Owner, plugin: &Arc<str>, stream: &str) -> Option<Arc<Target>> {
        let stream = stream.trim_matches('/');
        (!stream.is_empty() && stream.len() <= MAX_PATH).then(|| {
            Arc::new(Target {
                owner,
                plugin: plugin.clone(),
                stream: stream.into(),
            })
        })
    }
}

/// A published object.
pub(crate) struct Object {
    pub target: Arc<Target>,
    pub content_type: Box<str>,
    pub body: Bytes,
}

enum Slot {
    Ready(Arc<Object>),
    Expected {
        target: Arc<Target>,
        until: Instant,
        ready: Arc<Notify>,
        /// Requests held for it.
        held: usize,
    },
}

impl Slot {
    fn owner(&self) -> Owner {
        match self {
            Slot::Ready(o) => o.target.owner,
            Slot::Expected { target, .. } => target.owner,
        }
    }
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Slots held, by owner.
    counts: HashMap<Owner, usize>,
}

impl State {
    fn remove(&mut self, path: &str) -> Option<Slot> {
        let slot = self.slots.remove(path)?;
        if let Some(n) = self.counts.get_mut(&slot.owner()) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&slot.owner());
            }
        }
        Some(slot)
    }

    /// Takes a place for a new slot of `owner`.
    fn take_place(&mut self, owner: Owner) -> bool {
        let n = self.counts.entry(owner).or_default();
        if *n >= MAX_OBJECTS {
            return false;
        }
        *n += 1;
        true
    }
}

/// What [`Objects::lookup`] found.
pub(crate) enum Found {
    Ready(Arc<Object>),
    Expected(Arc<Target>),
}

/// Every instance's objects, by request path.
#[derive(Default)]
pub(crate) struct Objects {
    state: Mutex<State>,
    /// Responses served from them.
    served: AtomicU64,
}

fn path_ok(path: &str) -> bool {
    path.starts_with('/') && path.len() <= MAX_PATH && !path.contains(['?', '#'])
}

impl Objects {
    /// `http_publish`.
    pub(crate) fn publish(
        &self,
        owner: Owner,
        plugin: &Arc<str>,
        path: &str,
        stream: &str,
        content_type: &str,
        body: Bytes,
    ) -> i32 {
        let target = Target::new(owner, plugin, stream);
        let Some(target) = target.filter(|_| {
            path_ok(path)
                && !content_type.is_empty()
                && content_type.len() <= MAX_CONTENT_TYPE
                && !content_type.bytes().any(|b| b.is_ascii_control())
        }) else {
            return RILL_ERR_INVALID;
        };
        let object = Arc::new(Object {
            target,
            content_type: content_type.into(),
            body,
        });
        let mut st = self.state.lock();
        let waiting = match st.slots.get(path) {
            Some(Slot::Ready(_)) => return RILL_ERR_BUSY,
            Some(s @ Slot::Expected { .. }) if s.owner() != owner => return RILL_ERR_BUSY,
            Some(Slot::Expected { ready, .. }) => Some(ready.clone()),
            None => None,
        };
        if waiting.is_none() && !st.take_place(owner) {
            return RILL_ERR_BUSY;
        }
        st.slots.insert(path.to_owned(), Slot::Ready(object));
        drop(st);
        if let Some(ready) = waiting {
            ready.notify_waiters();
        }
        RILL_OK
    }

    /// `http_unpublish`.
    pub(crate) fn unpublish(&self, owner: Owner, path: &str) -> i32 {
        let mut st = self.state.lock();
        if st.slots.get(path).map(Slot::owner) != Some(owner) {
            return RILL_ERR_NOT_FOUND;
        }
        if let Some(Slot::Expected { ready, .. }) = st.remove(path) {
            drop(st);
            // Held requests go to the plugin now.
            ready.notify_waiters();
        }
        RILL_OK
    }

    /// `http_expect`.
    pub(crate) fn expect(
        &self,
        owner: Owner,
        plugin: &Arc<str>,
        path: &str,
        stream: &str,
        wait_ms: u32,
    ) -> i32 {
        let target = Target::new(owner, plugin, stream);
        let Some(target) = target.filter(|_| path_ok(path) && wait_ms <= MAX_EXPECT_MS) else {
            return RILL_ERR_INVALID;
        };
        let until = Instant::now() + std::time::Duration::from_millis(u64::from(wait_ms));
        let mut st = self.state.lock();
        match st.slots.get_mut(path) {
            Some(Slot::Expected {
                target: t,
                until: u,
                ..
            }) if t.owner == owner => {
                *u = until;
                *t = target;
                return RILL_OK;
            }
            Some(Slot::Expected { until: u, .. }) if *u <= Instant::now() => {
                // Another instance's, lapsed: it is this one's now.
                st.remove(path);
            }
            Some(_) => return RILL_ERR_BUSY,
            None => {}
        }
        if !st.take_place(owner) {
            return RILL_ERR_BUSY;
        }
        st.slots.insert(
            path.to_owned(),
            Slot::Expected {
                target,
                until,
                ready: Arc::new(Notify::new()),
                held: 0,
            },
        );
        RILL_OK
    }

    /// Drops everything of `owner` (its instance ends); held requests go
    /// to the plugin routes as usual.
    pub(crate) fn drop_owner(&self, owner: Owner) {
        let mut st = self.state.lock();
        let mut woken = Vec::new();
        st.slots.retain(|_, s| {
            if s.owner() != owner {
                return true;
            }
            if let Slot::Expected { ready, .. } = s {
                woken.push(ready.clone());
            }
            false
        });
        st.counts.remove(&owner);
        drop(st);
        for w in woken {
            w.notify_waiters();
        }
    }

    /// The object at `path`, or whose it will be while it is expected
    /// (to admit a request before it waits).
    pub(crate) fn lookup(&self, path: &str) -> Option<Found> {
        match self.state.lock().slots.get(path)? {
            Slot::Ready(o) => Some(Found::Ready(o.clone())),
            Slot::Expected { until, .. } if *until <= Instant::now() => None,
            Slot::Expected { target, .. } => Some(Found::Expected(target.clone())),
        }
    }

    /// The object at `path`, waiting for it while it is expected. None:
    /// no such object (never was, or it did not come in time), or too many
    /// requests wait for it already.
    pub(crate) async fn get(&self, path: &str) -> Option<Arc<Object>> {
        let mut holding = None;
        let got = self.wait_for(path, &mut holding).await;
        if holding.is_some() {
            if let Some(Slot::Expected { held, .. }) = self.state.lock().slots.get_mut(path) {
                *held = held.saturating_sub(1);
            }
        }
        got
    }

    async fn wait_for(&self, path: &str, holding: &mut Option<()>) -> Option<Arc<Object>> {
        loop {
            let (ready, until) = {
                let mut st = self.state.lock();
                match st.slots.get_mut(path)? {
                    Slot::Ready(o) => return Some(o.clone()),
                    Slot::Expected { until, .. } if *until <= Instant::now() => {
                        st.remove(path);
                        return None;
                    }
                    Slot::Expected {
                        until, ready, held, ..
                    } => {
                        if holding.is_none() {
                            if *held >= MAX_HELD {
                                return None;
                            }
                            *held += 1;
                            *holding = Some(());
                        }
                        (ready.clone(), *until)
                    }
                }
            };
            let notified = ready.notified();
            tokio::pin!(notified);
            // Registered before looking again: a publish between the two
            // cannot be missed.
            notified.as_mut().enable();
            {
                let st = self.state.lock();
                match st.slots.get(path) {
                    Some(Slot::Ready(o)) => return Some(o.clone()),
                    Some(Slot::Expected { .. }) => {}
                    None => return None,
                }
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                // The deadline may have moved (expected again): look again.
                let mut st = self.state.lock();
                match st.slots.get(path) {
                    Some(Slot::Expected { until: u, .. }) if *u > until => continue,
                    Some(Slot::Ready(o)) => return Some(o.clone()),
                    Some(Slot::Expected { .. }) => {
                        // Lapsed: the next request does not wait.
                        st.remove(path);
                        return None;
                    }
                    None => return None,
                }
            }
        }
    }

    /// Objects and expectations held.
    pub(crate) fn held(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// Responses served from objects.
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// What the HTTP server answers for a request of a published object.
pub enum ObjectReply {
    /// 200 with these bytes (none for HEAD).
    Ok { content_type: Box<str>, body: Bytes },
    /// Admission refused it: the status, and the challenge of a 401.
    Refused {
        status: u16,
        challenge: Option<&'static str>,
    },
}

/// Answers a GET or HEAD of `path` from the published objects, after the
/// admission a play of the object's stream gets; None: not an object
/// (or a webhook must decide): the request goes to the plugin routes.
pub(crate) async fn answer(
    host: &super::host::HostShared,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Option<ObjectReply> {
    use crate::admission::{self, Action, Creds, Outcome, Request};
    let found = host.objects.lookup(path)?;
    let o = match &found {
        Found::Ready(object) => object.target.clone(),
        Found::Expected(target) => target.clone(),
    };
    let adm = &host.admission;
    let (user, password, token) = authorization
        .and_then(admission::parse_authorization)
        .unwrap_or_default();
    let creds = Creds {
        user: user.as_deref(),
        password: password.as_deref(),
        token: token.as_deref(),
    };
    let req = Request::new(Action::Play, &o.stream, query, client, creds, &o.plugin);
    let verdict = match adm.decide(&req) {
        Outcome::Allow => adm.check_limits(&host.engine, Action::Play, &o.stream),
        Outcome::Refuse(r) => Err(r),
        Outcome::AskHook => return None,
    };
    Some(match verdict {
        Ok(()) => {
            // Admitted: now it may wait for the object.
            let object = match found {
                Found::Ready(object) => object,
                Found::Expected(_) => host.objects.get(path).await?,
            };
            host.objects.served.fetch_add(1, Ordering::Relaxed);
            ObjectReply::Ok {
                content_type: object.content_type.clone(),
                body: object.body.clone(),
            }
        }
        Err(r) => {
            adm.refused(Action::Play, &o.stream, &o.plugin, client, r);
            ObjectReply::Refused {
                status: super::session::http_status_for(r.status),
                challenge: (r.status == RILL_ERR_UNAUTHORIZED)
                    .then(|| super::admit::challenge(adm, Action::Play, &o.stream)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plugin() -> Arc<str> {
        Arc::from("hls")
    }

    #[tokio::test]
    async fn published_objects_are_served_and_expected_ones_waited_for() {
        let o = Arc::new(Objects::default());
        let p = plugin();
        assert_eq!(
            o.publish(
                1,
                &p,
                "/a/p1.m4s",
                "a",
                "video/mp4",
                Bytes::from_static(b"x")
            ),
            RILL_OK
        );
        assert_eq!(&o.get("/a/p1.m4s").await.unwrap().body[..], b"x");
        // Immutable: not published twice.
        assert_eq!(
            o.publish(1, &p, "/a/p1.m4s", "a", "video/mp4", Bytes::new()),
            RILL_ERR_BUSY
        );
        assert!(o.get("/a/p2.m4s").await.is_none());
        // Expected: the request waits, and gets it the moment it comes.
        assert_eq!(o.expect(1, &p, "/a/p2.m4s", "a", 5_000), RILL_OK);
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.get("/a/p2.m4s").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        let p2 = p.clone();
        assert_eq!(
            o.publish(
                1,
                &p2,
                "/a/p2.m4s",
                "a",
                "video/mp4",
                Bytes::from_static(b"y")
            ),
            RILL_OK
        );
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got.unwrap().body[..], b"y");
        // Another instance can take neither.
        assert_eq!(o.expect(2, &p, "/a/p2.m4s", "a", 100), RILL_ERR_BUSY);
        assert_eq!(o.unpublish(2, "/a/p2.m4s"), RILL_ERR_NOT_FOUND);
        assert_eq!(o.unpublish(1, "/a/p2.m4s"), RILL_OK);
        assert!(o.get("/a/p2.m4s").await.is_none());
        o.drop_owner(1);
        assert_eq!(o.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expectation_that_lapses_sends_the_request_on() {
        let o = Objects::default();
        let p = plugin();
        assert_eq!(o.expect(1, &p, "/a/p9.m4s", "a", 200), RILL_OK);
        let t0 = Instant::now();
        assert!(o.get("/a/p9.m4s").await.is_none());
        assert!(t0.elapsed() >= Duration::from_millis(200));
        // Gone: the next request does not wait.
        assert_eq!(o.held(), 0);
        // A lapsed expectation of another instance can be taken over.
        assert_eq!(o.expect(1, &p, "/a/q.m4s", "a", 10), RILL_OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(o.expect(2, &p, "/a/q.m4s", "a", 10), RILL_OK);
    }

    #[tokio::test]
    async fn instance_end_wakes_held_requests_and_bad_input_is_refused() {
        let o = Arc::new(Objects::default());
        assert_eq!(o.expect(7, &plugin(), "/s/x", "s", 10_000), RILL_OK);
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.get("/s/x").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        o.drop_owner(7);
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(got.is_none());
        let p = plugin();
        for (path, stream, ct) in [
            ("nope", "s", "t"),
            ("/a?b", "s", "t"),
            ("/a", "", "t"),
            ("/a", "s", ""),
            ("/a", "s", "x\ny"),
        ] {
            assert_eq!(
                o.publish(1, &p, path, stream, ct, Bytes::new()),
                RILL_ERR_INVALID,
                "{path} {stream} {ct:?}"
            );
        }
        assert_eq!(
            o.expect(1, &p, "/a", "s", MAX_EXPECT_MS + 1),
            RILL_ERR_INVALID
        );
    }
}
