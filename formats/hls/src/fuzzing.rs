//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.

use bytes::Bytes;

use crate::parse::{self, best_variant, Limits, Playlist, Pos};
use crate::pull::{PullConfig, PullError, Puller, Response, Stats, What};
use crate::Frame;

/// Small limits, so that the fuzzer reaches them.
fn small() -> Limits {
    Limits {
        max_bytes: 64 << 10,
        max_lines: 2_000,
        max_segments: 200,
        max_variants: 16,
        max_parts: 400,
    }
}

/// A playlist: whatever parses stays within the limits, numbers its
/// segments one after the other, and answers the questions players ask
/// without panicking.
pub fn playlist(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let limits = small();
    match parse::parse_with(&text, &limits) {
        Ok(Playlist::Multivariant(v)) => {
            assert!(v.len() <= limits.max_variants);
            if let Some(b) = best_variant(&v) {
                assert!(v.iter().all(|x| x.bandwidth <= b.bandwidth));
            }
        }
        Ok(Playlist::Media(m)) => {
            assert!(m.segments.len() <= limits.max_segments);
            let parts: usize = m.segments.iter().map(|s| s.parts.len()).sum();
            assert!(parts <= limits.max_parts);
            assert!(m.target_duration.is_finite() && m.target_duration >= 0.0);
            for w in m.segments.windows(2) {
                assert!(w[1].msn == w[0].msn.saturating_add(1));
            }
            for s in &m.segments {
                assert!(s.duration.is_finite() && s.duration >= 0.0);
                if let Some(r) = s.byterange {
                    assert!(r.offset.is_some(), "segment offsets are filled in");
                }
            }
            // Only the last segment may be in progress.
            let open = m.segments.iter().filter(|s| s.uri.is_none()).count();
            assert!(open <= 1);
            assert!(m.segments.iter().rev().skip(1).all(|s| s.uri.is_some()));
            let next = m.next_msn();
            assert!(next >= m.first_msn());
            let start = m.segment_start(3);
            assert!(start >= m.first_msn() && start <= next);
            let live = m.live_start();
            let _ = m.normalize(live);
            let _ = m.normalize(Pos {
                msn: m.first_msn(),
                part: usize::MAX,
            });
            let _ = m.next_part();
            if let Some(h) = &m.preload_hint {
                let _ = m.find_part(&h.uri);
            }
        }
        Err(_) => {}
    }
}

/// Splits a `pull` input: a control byte, the playlist (its length in two
/// bytes), and the body answered to every other request.
pub fn split_pull(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&ctl, rest) = data.split_first()?;
    let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let rest = &rest[2..];
    let len = len.min(rest.len());
    Some((ctl, &rest[..len], &rest[len..]))
}

/// A whole pull against a server that answers the playlist with the
/// input's playlist and everything else (init segments, segments) with its
/// body: MPEG-TS, fMP4 (init and fragments in one body serve both), or
/// garbage. The control byte picks pacing (bit 0) and the live edge. What
/// comes out has one monotonic time line per track, and no more frames
/// than the body could hold.
pub fn pull(data: &[u8]) {
    let Some(o) = run_pull(data) else {
        return;
    };
    // No segment gives more than max_frames.
    assert!(o.frames.len() <= o.stats.segments as usize * 5_000);
    let mut last: Vec<(u32, i64)> = Vec::new();
    for f in &o.frames {
        assert!(f.dts >= 0 && f.pts >= f.dts, "{f:?}");
        match last.iter_mut().find(|t| t.0 == f.track) {
            Some(t) => {
                assert!(f.dts >= t.1, "time back on track {}", f.track);
                t.1 = f.dts;
            }
            None => last.push((f.track, f.dts)),
        }
    }
}

/// What [`run_pull`] saw.
#[derive(Debug)]
pub struct PullOutcome {
    /// The frames released.
    pub frames: Vec<Frame>,
    /// Why the pull ended, if it did.
    pub error: Option<PullError>,
    /// Its counters.
    pub stats: Stats,
}

/// The pull of [`pull`], without its checks.
pub fn run_pull(data: &[u8]) -> Option<PullOutcome> {
    let (ctl, playlist, body) = split_pull(data)?;
    let url = rill_http::Url::parse("http://origin/live/x.m3u8").expect("a good URL");
    let cfg = PullConfig {
        pace: ctl & 1 != 0,
        live_edge: (ctl >> 1 & 7) as u64,
        playlist: small(),
        max_segment: 1 << 20,
        max_init: 1 << 20,
        max_queued: 8,
        max_frames: 5_000,
        ..PullConfig::default()
    };
    let body = Bytes::copy_from_slice(body);
    let mut p = Puller::new(url, cfg, 0);
    let mut out: Vec<Frame> = Vec::new();
    let mut now = 0i64;
    let mut requests = 0;
    // Twenty seconds in steps of 100 ms; the same answers each time.
    for _ in 0..200 {
        while let Some(req) = p.poll_request(now) {
            requests += 1;
            assert!(requests < 10_000, "requests without end");
            let answer = match req.what {
                What::Playlist => Bytes::copy_from_slice(playlist),
                What::Init | What::Segment(_) => match req.range {
                    Some((a, b)) => {
                        let b = (b as usize).saturating_add(1).min(body.len());
                        body.slice((a as usize).min(b)..b)
                    }
                    None => body.clone(),
                },
            };
            let r = Response {
                status: if req.range.is_some() { 206 } else { 200 },
                reason: "OK".into(),
                location: None,
                body: answer,
            };
            if p.on_response(now, req.id, Ok(r)).is_err() {
                break;
            }
        }
        while let Some(f) = p.poll_frame(now) {
            out.push(f);
        }
        if p.tick(now).is_err() {
            break;
        }
        now += 100_000;
    }
    Some(PullOutcome {
        frames: out,
        error: p.error().cloned(),
        stats: p.stats(),
    })
}
