//! Parts and init segments handed to the host to serve (ABI 1.8,
//! `http_publish`): every LL-HLS viewer fetches each part, most of them
//! through the preload hint before it exists, so the host holds those
//! requests (`http_expect`) and answers them all from its own copy of the
//! frame the moment it comes, without a session of this plugin per
//! request. What the host does not serve (segments, TS, a request that
//! comes after an expectation lapsed, any request on an older host) comes
//! to the plugin as before and is answered from the same window.

use std::collections::VecDeque;
use std::time::Duration;

use rill_abi::sdk::{Error, Host};
use rill_hls::Object;

use crate::{Blob, Stream};

/// What of a stream the host serves for it.
#[derive(Default)]
pub(crate) struct Shared {
    /// The next part to hand over.
    next: (u64, usize),
    /// Parts handed over, oldest first, with their segment's number.
    parts: VecDeque<(u64, String)>,
    /// Init segments handed over.
    inits: Vec<(u32, String)>,
    /// Parts announced (the preload hint and the next segment's first).
    expected: Vec<String>,
}

/// Hands the host what `st` made since the last call, announces the parts
/// to come (held requests wait at most `hold`), and takes back what left
/// the window. False: the host cannot serve objects (older than 1.8).
pub(crate) fn share(host: &Host, path: &str, st: &mut Stream, hold: Duration) -> bool {
    let url = |o: Object| format!("/{path}/{}", o.name());
    let w = st.ll.window();
    let sh = &mut st.shared;
    for seg in w.segments() {
        if !sh.inits.iter().any(|(id, _)| *id == seg.init) {
            if let Some(Blob::Frame(f)) = st.ll.init(seg.init) {
                let u = url(Object::Init(seg.init));
                match host.http_publish(&u, path, "video/mp4", f) {
                    Ok(()) => sh.inits.push((seg.init, u)),
                    Err(e) if e == Error::UNSUPPORTED => return false,
                    Err(_) => {}
                }
            }
        }
        for (i, p) in seg.parts.iter().enumerate() {
            if (seg.msn, i) < sh.next {
                continue;
            }
            if let Blob::Frame(f) = &p.data {
                let u = url(Object::Part(seg.msn, i));
                match host.http_publish(&u, path, "video/mp4", f) {
                    Ok(()) => sh.parts.push_back((seg.msn, u)),
                    Err(e) if e == Error::UNSUPPORTED => return false,
                    Err(_) => {}
                }
            }
        }
    }
    let (nm, ni) = w.next_part();
    sh.next = (nm, ni);
    // The hinted part, and the first of the next segment (a key frame may
    // cut the segment first): requests for them wait in the host.
    let expected = if st.ended {
        Vec::new()
    } else {
        vec![url(Object::Part(nm, ni)), url(Object::Part(nm + 1, 0))]
    };
    for old in std::mem::take(&mut sh.expected) {
        // One that came is a part now; one that will not come any more
        // sends its held requests to the plugin (a 404 there).
        if !expected.contains(&old) && !sh.parts.iter().any(|(_, u)| *u == old) {
            let _ = host.http_unpublish(&old);
        }
    }
    for u in &expected {
        let _ = host.http_expect(u, path, hold);
    }
    sh.expected = expected;
    let first = w.first_msn();
    while sh.parts.front().is_some_and(|(m, _)| *m < first) {
        if let Some((_, u)) = sh.parts.pop_front() {
            let _ = host.http_unpublish(&u);
        }
    }
    let ll = &st.ll;
    sh.inits.retain(|(id, u)| {
        let keep = ll.init(*id).is_some();
        if !keep {
            let _ = host.http_unpublish(u);
        }
        keep
    });
    true
}

/// Takes back everything of a stream (it stops being muxed).
pub(crate) fn unshare(host: &Host, st: &mut Stream) {
    let sh = std::mem::take(&mut st.shared);
    let urls = sh.parts.into_iter().map(|(_, u)| u);
    for u in urls
        .chain(sh.inits.into_iter().map(|(_, u)| u))
        .chain(sh.expected)
    {
        let _ = host.http_unpublish(&u);
    }
}
