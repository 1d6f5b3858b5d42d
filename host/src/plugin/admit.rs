//! Admission for plugin sessions: the `admit` call (ABI 1.2) and the checks
//! `publish_open` / `subscribe_open` run for sessions without a grant.
//! The decision itself is [`crate::admission`]'s; this is the glue to
//! sessions: their address, the credentials of their HTTP request, the
//! grants they hold, the answer of a webhook delivered on their task.

use std::sync::Arc;

use rill_abi::*;

use super::session::{Ctl, SessionShared};
use crate::admission::{self, Action, Admission, Creds, HookRequest, Outcome, Refusal, Request};

/// Credentials from the session's HTTP request (`Authorization`), owned.
#[derive(Default)]
struct HttpCreds {
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl HttpCreds {
    fn of(s: &SessionShared) -> HttpCreds {
        let header = s.st.lock().authorization.clone();
        let Some((user, password, token)) =
            header.as_deref().and_then(admission::parse_authorization)
        else {
            return HttpCreds::default();
        };
        HttpCreds {
            user,
            password,
            token,
        }
    }
}

/// What `publish_open` / `subscribe_open` check before opening: the grant
/// from `admit` or the synchronous policy, then the limits. `Err` is the
/// status to return.
pub(crate) fn check_open(
    s: &Arc<SessionShared>,
    action: Action,
    path: &str,
    query: &str,
) -> Result<(), i32> {
    // A session without a socket nor a peer is the plugin's own work (an
    // HLS muxer, a recorder): the plugin admitted the clients it serves.
    // So is a connection the plugin opened (a relay's pull or push): the
    // server at the other end is no client of ours.
    if (s.sink == super::session::Sink::None && s.peer.is_empty()) || s.outbound {
        return Ok(());
    }
    let adm = &s.inst.host.admission;
    let client = admission::client_ip(&s.peer);
    let refuse = |r: Refusal| {
        adm.refused(action, path, &s.inst.name, client, r);
        s.note_refusal(adm, action, path, r);
        Err(r.status)
    };
    if !s.granted(action, path) {
        let http = HttpCreds::of(s);
        let req = Request::new(
            action,
            path,
            query,
            client,
            Creds {
                user: http.user.as_deref(),
                password: http.password.as_deref(),
                token: http.token.as_deref(),
            },
            &s.inst.name,
        );
        match adm.decide(&req) {
            Outcome::Allow => {}
            Outcome::Refuse(r) => return refuse(r),
            Outcome::AskHook => {
                s.inst.log(
                    RILL_LOG_WARN,
                    &format!(
                        "{} {path}: the policy asks a webhook, which needs the plugin to call \
                         admit (ABI 1.2) first; refused",
                        action.as_str()
                    ),
                );
                return refuse(Refusal::new(RILL_ERR_DENIED, "hook_needs_admit"));
            }
        }
    }
    if let Err(r) = adm.check_limits(&s.inst.host.engine, action, path) {
        return refuse(r);
    }
    Ok(())
}

/// A `*_done` notification to send when a publisher or player handle ends
/// (held by its entry), when such a hook is set.
pub(crate) struct DoneNote {
    adm: Arc<Admission>,
    req: HookRequest,
}

impl Drop for DoneNote {
    fn drop(&mut self) {
        self.adm.done(&self.req);
    }
}

pub(crate) fn done_note(
    s: &SessionShared,
    action: Action,
    path: &str,
    query: &str,
) -> Option<DoneNote> {
    let adm = &s.inst.host.admission;
    adm.wants_done(action).then(|| DoneNote {
        adm: adm.clone(),
        req: HookRequest {
            action,
            path: path.to_owned(),
            query: query.to_owned(),
            protocol: s.inst.name.clone(),
            client: admission::client_ip(&s.peer),
        },
    })
}

/// The `admit` host call, past argument checks.
pub(crate) fn admit(
    s: &Arc<SessionShared>,
    action: Action,
    path: &str,
    query: &str,
    creds: Creds<'_>,
    ticket: u64,
) -> i32 {
    let adm = s.inst.host.admission.clone();
    let client = admission::client_ip(&s.peer);
    let http = HttpCreds::of(s);
    let creds = Creds {
        user: creds.user.or(http.user.as_deref()),
        password: creds.password.or(http.password.as_deref()),
        token: creds.token.or(http.token.as_deref()),
    };
    let req = Request::new(action, path, query, client, creds, &s.inst.name);
    let limits = |adm: &Admission| adm.check_limits(&s.inst.host.engine, action, path);
    let refuse = |r: Refusal| {
        adm.refused(action, path, &s.inst.name, client, r);
        s.note_refusal(&adm, action, path, r);
        r.status
    };
    match adm.decide(&req) {
        Outcome::Allow => match limits(&adm) {
            Ok(()) => {
                s.grant(action, path);
                RILL_OK
            }
            Err(r) => refuse(r),
        },
        Outcome::Refuse(r) => refuse(r),
        Outcome::AskHook => {
            let hook = HookRequest::of(&req);
            let weak = Arc::downgrade(s);
            let adm2 = adm.clone();
            s.inst.host.rt.spawn(async move {
                let verdict = adm2.clone().ask_hook(hook.clone()).await;
                let Some(s) = weak.upgrade() else { return };
                let verdict = verdict
                    .and_then(|()| adm2.check_limits(&s.inst.host.engine, hook.action, &hook.path));
                let status = match verdict {
                    Ok(()) => {
                        s.grant(hook.action, &hook.path);
                        RILL_OK
                    }
                    Err(r) => {
                        adm2.refused(hook.action, &hook.path, &s.inst.name, hook.client, r);
                        r.status
                    }
                };
                s.send(Ctl::Admit { ticket, status });
            });
            RILL_PENDING
        }
    }
}

impl SessionShared {
    pub(crate) fn granted(&self, action: Action, path: &str) -> bool {
        self.st
            .lock()
            .grants
            .iter()
            .any(|(a, p)| *a == action && p == path)
    }

    pub(crate) fn grant(&self, action: Action, path: &str) {
        let mut st = self.st.lock();
        if !st.grants.iter().any(|(a, p)| *a == action && p == path) {
            st.grants.push((action, path.to_owned()));
        }
    }

    /// Remembers how to challenge an HTTP client refused for want of
    /// credentials (`WWW-Authenticate` of the host's 401).
    fn note_refusal(&self, adm: &Admission, action: Action, path: &str, r: Refusal) {
        if r.status == RILL_ERR_UNAUTHORIZED {
            self.st.lock().challenge = Some(challenge(adm, action, path));
        }
    }
}

/// The `WWW-Authenticate` challenge of a 401 for `action` on `path`.
pub(crate) fn challenge(adm: &Admission, action: Action, path: &str) -> &'static str {
    if adm.wants_user(action, path) {
        "Basic realm=\"rill\", Bearer realm=\"rill\""
    } else {
        "Bearer realm=\"rill\""
    }
}
