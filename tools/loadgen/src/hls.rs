//! HLS viewers, one task each.
//!
//! - **LL-HLS** (`--proto hls`), the way hls.js plays a low-latency
//!   stream: the multivariant playlist, the media playlist, the init
//!   segment (`EXT-X-MAP`); then from the live edge (the last part marked
//!   INDEPENDENT, else the last segment's start) every part in order. A
//!   part already listed is fetched at once; the next one is requested
//!   through the preload hint while a blocking reload
//!   (`_HLS_msn`/`_HLS_part` of that part) brings the playlist that lists
//!   it and hints at the one after (two connections, as a browser has).
//!   Without a hint, a blocking reload and then the part. Every sample of
//!   a part counts as a frame.
//! - **Classic HLS** (`--proto hls-ts`): the playlist polled every half
//!   target duration, each new complete segment fetched and demuxed (TS,
//!   or fMP4 when the playlist has an `EXT-X-MAP`), starting with the last
//!   segment.
//!
//! Every URI comes from the playlists; only the entry URL is given.
//!
//! Part availability latency: for the parts requested before they existed
//! (through the hint, or right after the blocking reload that announced
//! them), each stamped frame's publication → the end of its part's
//! download. The goal: p99 ≤ part target + 50 ms.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::http::{Fail, HttpConn, Range};
use crate::httpflv::{HttpUrl, Res};
use rill_hls::parse::{self as playlist, Map, Media, Playlist, Pos};

use crate::media::{self, Mp4Tracks};
use crate::sei;
use crate::stats::{Player, Playout, Shared, STALL};

/// What the HLS players did, summed over all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Counters {
    /// Multivariant playlists fetched.
    pub multivariant: u64,
    /// Media playlists fetched without blocking (the first, and polls).
    pub playlists: u64,
    /// Blocking playlist reloads (`_HLS_msn`/`_HLS_part`).
    pub blocking_reloads: u64,
    /// Parts fetched (all of them, hinted ones included).
    pub parts: u64,
    /// Parts fetched through the preload hint.
    pub hinted_parts: u64,
    /// Parts and segments requested before they existed (the part
    /// availability latency comes from these).
    pub live_parts: u64,
    /// Whole segments fetched.
    pub segments: u64,
    /// Init segments fetched.
    pub inits: u64,
    /// Times a player fell out of the playlist's window and jumped to the
    /// live edge (each is also a skip).
    pub behind_window: u64,
    /// Non-2xx answers that a player got over (a hint or a reload answered
    /// 404, 410, 503... and asked again).
    pub http_errors: u64,
    /// Samples (frames) received in parts and segments.
    pub samples: u64,
    /// `EXT-X-PART-INF:PART-TARGET` seen, ms (the largest).
    pub part_target_ms: Option<f64>,
    /// `EXT-X-TARGETDURATION` seen, s (the largest).
    pub target_duration_s: Option<f64>,
    /// Players that ran the low-latency loop (parts and blocking reloads).
    pub low_latency_players: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.multivariant += o.multivariant;
        self.playlists += o.playlists;
        self.blocking_reloads += o.blocking_reloads;
        self.parts += o.parts;
        self.hinted_parts += o.hinted_parts;
        self.live_parts += o.live_parts;
        self.segments += o.segments;
        self.inits += o.inits;
        self.behind_window += o.behind_window;
        self.http_errors += o.http_errors;
        self.samples += o.samples;
        self.low_latency_players += o.low_latency_players;
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.part_target_ms = max(self.part_target_ms, o.part_target_ms);
        self.target_duration_s = max(self.target_duration_s, o.target_duration_s);
    }
}

/// Largest playlist.
const MAX_PLAYLIST: usize = 1 << 20;

/// The playlist reader's bounds: the body's, and the defaults otherwise.
fn limits() -> playlist::Limits {
    playlist::Limits {
        max_bytes: MAX_PLAYLIST,
        ..playlist::Limits::default()
    }
}
/// Largest part, segment or init segment.
const MAX_MEDIA: usize = 64 << 20;
/// How long a first playlist may keep answering 404 (the stream is not
/// cut into parts yet) before the player gives up.
const FIRST_PLAYLIST_WAIT: Duration = Duration::from_secs(10);

/// The state of one viewer.
struct Viewer<'a> {
    main: HttpConn,
    /// The second connection: blocking playlist reloads.
    side: HttpConn,
    c: Counters,
    p: &'a mut Player,
    shared: &'a Shared,
    end: Instant,
    /// The init segment in force: its URL path and tracks.
    init: Option<(String, Mp4Tracks)>,
    timeout: Duration,
}

/// An HLS viewer: `classic` plays segments only (polling), otherwise the
/// low-latency loop runs when the playlist has parts and blocking reloads.
pub async fn play(
    url: HttpUrl,
    classic: bool,
    p: &mut Player,
    shared: &Shared,
    end: Instant,
    read_buf: usize,
) -> Res<()> {
    let mut v = Viewer {
        main: HttpConn::new(read_buf),
        side: HttpConn::new(read_buf.min(16 * 1024)),
        c: Counters::default(),
        p,
        shared,
        end,
        init: None,
        timeout: Duration::from_secs(10),
    };
    let r = v.run(url, classic).await;
    v.p.bytes += v.main.bytes + v.side.bytes;
    shared.hls.lock().unwrap().add(&v.c);
    match r {
        Ok(()) | Err(Fail::End) => Ok(()),
        Err(Fail::Err(e)) => Err(e),
    }
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

impl Viewer<'_> {
    /// GET a playlist (on the main connection, or the side one for
    /// blocking reloads), parsed.
    async fn playlist(&mut self, url: &HttpUrl, side: bool) -> Result<(u16, Playlist), Fail> {
        let conn = if side { &mut self.side } else { &mut self.main };
        let (status, body, _) = conn
            .get(url, None, self.end, self.timeout, MAX_PLAYLIST)
            .await?;
        if !ok(status) {
            return Ok((status, Playlist::Multivariant(Vec::new())));
        }
        let text = String::from_utf8_lossy(&body);
        let parsed =
            playlist::parse_with(&text, &limits()).map_err(|e| Fail::Err(e.to_string()))?;
        Ok((status, parsed))
    }

    /// The first fetch of a playlist: waits while the server answers 404
    /// (a stream just published has no part yet), then errors.
    async fn first_playlist(&mut self, url: &HttpUrl) -> Result<Playlist, Fail> {
        let give_up = Instant::now() + FIRST_PLAYLIST_WAIT;
        loop {
            let (status, pl) = self.playlist(url, false).await?;
            if ok(status) {
                self.p.connected.get_or_insert_with(Instant::now);
                return Ok(pl);
            }
            if (status != 404 && status != 503) || Instant::now() >= give_up {
                return Err(Fail::Err(format!("playlist: HTTP {status}")));
            }
            self.c.http_errors += 1;
            self.sleep(Duration::from_millis(250)).await?;
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), Fail> {
        let at = (Instant::now() + d).min(self.end);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        if Instant::now() >= self.end {
            return Err(Fail::End);
        }
        Ok(())
    }

    /// The media playlist: the entry URL itself, or its first variant.
    async fn media_playlist(&mut self, entry: HttpUrl) -> Result<(HttpUrl, Media), Fail> {
        match self.first_playlist(&entry).await? {
            Playlist::Media(m) => {
                self.c.playlists += 1;
                Ok((entry, m))
            }
            Playlist::Multivariant(v) => {
                self.c.multivariant += 1;
                let v = v
                    .iter()
                    .max_by_key(|v| v.bandwidth)
                    .ok_or("multivariant playlist without variants")?;
                let url = entry.resolve(&v.uri)?;
                match self.first_playlist(&url).await? {
                    Playlist::Media(m) => {
                        self.c.playlists += 1;
                        Ok((url, m))
                    }
                    Playlist::Multivariant(_) => Err("variant is not a media playlist".into()),
                }
            }
        }
    }

    /// Fetches the init segment of `map` unless it is the one in force
    /// (None: TS).
    async fn ensure_init(&mut self, base: &HttpUrl, map: Option<&Map>) -> Result<(), Fail> {
        let Some(map) = map else {
            self.init = None;
            return Ok(());
        };
        let url = base.resolve(&map.uri)?;
        if self.init.as_ref().is_some_and(|(u, _)| *u == url.path) {
            return Ok(());
        }
        let range = map.byterange.and_then(|b| b.http());
        let (status, body, _) = self
            .main
            .get(&url, range, self.end, self.timeout, MAX_MEDIA)
            .await?;
        if !ok(status) {
            return Err(Fail::Err(format!("init segment: HTTP {status}")));
        }
        self.c.inits += 1;
        self.init = Some((url.path, media::parse_init(&body)?));
        Ok(())
    }

    /// The playback and lateness allowances of this kind of delivery.
    fn configure(&mut self, m: &Media, low_latency: bool) {
        let target = Duration::from_secs_f64(m.target_duration.max(0.1));
        self.c.target_duration_s = Some(m.target_duration);
        self.c.part_target_ms = m.part_target.map(|t| t * 1000.0);
        self.timeout = (3 * target).max(Duration::from_secs(6));
        let (delay, late) = match (low_latency, m.part_target) {
            (true, Some(pt)) => {
                let pt = Duration::from_secs_f64(pt.max(0.01));
                (pt, STALL + pt)
            }
            // A classic player polls every half target duration.
            _ => (target / 2, STALL + target.mul_f64(1.5)),
        };
        self.p.playout = Some(Playout::new(delay));
        self.p.late_limit_us = late.as_micros() as u64;
    }

    async fn run(&mut self, entry: HttpUrl, classic: bool) -> Result<(), Fail> {
        let (url, m) = self.media_playlist(entry).await?;
        let low_latency = !classic
            && m.part_target.is_some()
            && m.server_control.can_block_reload
            && m.segments.iter().any(|s| !s.parts.is_empty());
        self.configure(&m, low_latency);
        if low_latency {
            self.c.low_latency_players += 1;
            self.low_latency(url, m).await
        } else {
            self.classic(url, m).await
        }
    }

    /// GETs one part or segment and hands its frames to the player; a
    /// non-2xx answer is returned (and counted), not an error.
    async fn fetch_media(
        conn: &mut HttpConn,
        url: &HttpUrl,
        range: Option<Range>,
        tracks: Option<&Mp4Tracks>,
        live: bool,
        v: (&mut Player, &Shared, &mut Counters, Instant, Duration),
    ) -> Result<u16, Fail> {
        let (p, shared, c, end, timeout) = v;
        let (status, body, _) = conn.get(url, range, end, timeout, MAX_MEDIA).await?;
        if !ok(status) {
            c.http_errors += 1;
            return Ok(status);
        }
        let now = Instant::now();
        let wall = sei::wall_us();
        let mut stamps = Vec::new();
        let n = match tracks {
            Some(t) => media::fmp4_frames(&body, t, p, shared, now, &mut stamps)?,
            None => media::ts_frames(&body, p, shared, now, &mut stamps)?,
        };
        c.samples += n as u64;
        if live && !stamps.is_empty() {
            c.live_parts += 1;
            let mut h = shared.part_latency.lock().unwrap();
            for &s in &stamps {
                h.add(wall.saturating_sub(s));
            }
            drop(h);
            if let Some(&last) = stamps.iter().max() {
                shared
                    .part_tail_latency
                    .lock()
                    .unwrap()
                    .add(wall.saturating_sub(last));
            }
        }
        Ok(status)
    }

    /// Fetches a listed part or segment on the main connection.
    async fn fetch(
        &mut self,
        url: &HttpUrl,
        range: Option<Range>,
        live: bool,
    ) -> Result<u16, Fail> {
        let tracks = self.init.as_ref().map(|(_, t)| t);
        Self::fetch_media(
            &mut self.main,
            url,
            range,
            tracks,
            live,
            (
                &mut *self.p,
                self.shared,
                &mut self.c,
                self.end,
                self.timeout,
            ),
        )
        .await
    }

    /// The least wait between two reloads that brought nothing new: half
    /// a part.
    fn poll_floor(&self, m: &Media) -> Duration {
        Duration::from_secs_f64((m.part_target.unwrap_or(m.target_duration) / 2.0).clamp(0.02, 1.0))
    }

    /// The blocking reload URL for `pos`.
    fn reload_url(url: &HttpUrl, pos: Pos) -> HttpUrl {
        url.with_query("_HLS_msn", &pos.msn.to_string())
            .with_query("_HLS_part", &pos.part.to_string())
    }

    /// The low-latency loop.
    async fn low_latency(&mut self, url: HttpUrl, mut pl: Media) -> Result<(), Fail> {
        let mut pos = pl.live_start();
        // The part that the last blocking reload announced.
        let mut announced: Option<Pos> = None;
        let mut in_segment: Option<u64> = None;
        loop {
            if Instant::now() >= self.end {
                return Err(Fail::End);
            }
            pos = pl.normalize(pos);
            if pos.msn < pl.first_msn() {
                self.c.behind_window += 1;
                self.p.skips += 1;
                pos = pl.live_start();
                continue;
            }
            if let Some(seg) = pl.segment(pos.msn).cloned() {
                if in_segment != Some(seg.msn) && pos.part == 0 && seg.discontinuity {
                    self.p.discontinuity();
                }
                if let Some(part) = seg.parts.get(pos.part) {
                    self.ensure_init(&url, seg.map.as_ref()).await?;
                    let purl = url.resolve(&part.uri)?;
                    let live = announced == Some(pos);
                    let st = self
                        .fetch(&purl, part.byterange.and_then(|b| b.http()), live)
                        .await?;
                    if !ok(st) {
                        return Err(Fail::Err(format!("part: HTTP {st}")));
                    }
                    self.c.parts += 1;
                    in_segment = Some(seg.msn);
                    pos.part += 1;
                    continue;
                }
                if let Some(uri) = &seg.uri {
                    if pos.part == 0 && seg.parts.is_empty() {
                        // Parts no longer listed: the whole segment.
                        self.ensure_init(&url, seg.map.as_ref()).await?;
                        let surl = url.resolve(uri)?;
                        let st = self
                            .fetch(&surl, seg.byterange.and_then(|b| b.http()), false)
                            .await?;
                        if !ok(st) {
                            return Err(Fail::Err(format!("segment: HTTP {st}")));
                        }
                        self.c.segments += 1;
                    } else {
                        // The rest of this segment's parts are gone.
                        self.p.skips += 1;
                    }
                    in_segment = Some(seg.msn);
                    pos = Pos {
                        msn: seg.msn + 1,
                        part: 0,
                    };
                    continue;
                }
            }
            // `pos` is not listed yet.
            let next = pl.next_part();
            let reload = Self::reload_url(&url, pos);
            let hint = pl
                .preload_hint
                .as_ref()
                .filter(|h| h.kind == "PART" && pos == next)
                .cloned();
            let Some(hint) = hint else {
                // A blocking reload, then the part it announces.
                self.c.blocking_reloads += 1;
                let (st, new) = self.playlist(&reload, true).await?;
                match new {
                    Playlist::Media(m) if ok(st) => {
                        let moved = m.next_part() != next;
                        pl = m;
                        if !moved {
                            // Answered at once with nothing new: a server
                            // that does not block. Do not hammer it.
                            self.sleep(self.poll_floor(&pl)).await?;
                        }
                    }
                    _ if ok(st) => return Err("reload is not a media playlist".into()),
                    _ if st == 404 || st >= 500 => {
                        self.c.http_errors += 1;
                        self.sleep(Duration::from_millis(100)).await?;
                    }
                    _ => {
                        // Asked for what the server will not answer (400:
                        // too far ahead): start again from the live edge.
                        self.c.http_errors += 1;
                        self.c.playlists += 1;
                        let (st, new) = self.playlist(&url, false).await?;
                        match new {
                            Playlist::Media(m) if ok(st) => {
                                pl = m;
                                pos = pl.live_start();
                                self.p.skips += 1;
                            }
                            _ => return Err(Fail::Err(format!("playlist: HTTP {st}"))),
                        }
                    }
                }
                announced = Some(pos);
                continue;
            };
            // The hinted part and the reload that lists it, together.
            let map = pl.segments.last().and_then(|s| s.map.clone());
            self.ensure_init(&url, map.as_ref()).await?;
            let hurl = url.resolve(&hint.uri)?;
            let range = hint
                .byterange_start
                .map(|s| (s, hint.byterange_length.map(|l| s + l.max(1) - 1)));
            let tracks = self.init.as_ref().map(|(_, t)| t);
            let part = Self::fetch_media(
                &mut self.main,
                &hurl,
                range,
                tracks,
                true,
                (
                    &mut *self.p,
                    self.shared,
                    &mut self.c,
                    self.end,
                    self.timeout,
                ),
            );
            let list = self
                .side
                .get(&reload, None, self.end, self.timeout, MAX_PLAYLIST);
            let (part, list) = tokio::join!(part, list);
            self.c.blocking_reloads += 1;
            let part_status = part?;
            if ok(part_status) {
                self.c.parts += 1;
                self.c.hinted_parts += 1;
                in_segment = Some(pos.msn);
                pos.part += 1;
            }
            let (st, body, _) = list?;
            if ok(st) {
                let text = String::from_utf8_lossy(&body);
                let parsed =
                    playlist::parse_with(&text, &limits()).map_err(|e| Fail::Err(e.to_string()))?;
                match parsed {
                    Playlist::Media(m) => pl = m,
                    Playlist::Multivariant(_) => {
                        return Err("reload is not a media playlist".into())
                    }
                }
                // Where the hinted part turned out to be, by its URI.
                if ok(part_status) {
                    if let Some(at) = pl.find_part(&hint.uri) {
                        pos = Pos {
                            msn: at.msn,
                            part: at.part + 1,
                        };
                    }
                }
            } else {
                self.c.http_errors += 1;
                self.sleep(Duration::from_millis(100)).await?;
            }
            if !ok(part_status) {
                announced = Some(pos);
                self.sleep(self.poll_floor(&pl)).await?;
            }
        }
    }

    /// The classic loop: poll every half target duration, fetch new
    /// segments.
    async fn classic(&mut self, url: HttpUrl, mut pl: Media) -> Result<(), Fail> {
        let mut next = pl.next_msn().saturating_sub(1).max(pl.first_msn());
        let poll = Duration::from_secs_f64((pl.target_duration / 2.0).max(0.05));
        let mut first = true;
        loop {
            if next < pl.first_msn() {
                self.c.behind_window += 1;
                self.p.skips += 1;
                next = pl.next_msn().saturating_sub(1).max(pl.first_msn());
            }
            let polled = Instant::now();
            while let Some(seg) = pl.segment(next).filter(|s| s.uri.is_some()).cloned() {
                if seg.discontinuity && !first {
                    self.p.discontinuity();
                }
                self.ensure_init(&url, seg.map.as_ref()).await?;
                let surl = url.resolve(seg.uri.as_deref().unwrap_or_default())?;
                let st = self
                    .fetch(&surl, seg.byterange.and_then(|b| b.http()), false)
                    .await?;
                if !ok(st) {
                    return Err(Fail::Err(format!("segment: HTTP {st}")));
                }
                self.c.segments += 1;
                next += 1;
                first = false;
            }
            if pl.endlist {
                return Err("the playlist ended".into());
            }
            let wait = (polled + poll).saturating_duration_since(Instant::now());
            self.sleep(wait).await?;
            self.c.playlists += 1;
            let (st, new) = self.playlist(&url, false).await?;
            match new {
                Playlist::Media(m) if ok(st) => pl = m,
                _ => return Err(Fail::Err(format!("playlist: HTTP {st}"))),
            }
        }
    }
}
