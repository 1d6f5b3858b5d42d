//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and
//! the stable smoke test (`tests/fuzz_smoke.rs`). Each must never panic.

use crate::limits::Limits;
use crate::message::{Item, Reader};
use crate::server::{Event, ServerSession, Settings, SetupAnswer, TrackStart};
use crate::transport::{Lower, Range, Transport};

/// The reader over `data` cut into chunks whose sizes come from the first
/// bytes; whatever is read once in one piece must read the same in chunks,
/// and what parses must write back to something that parses the same.
pub fn request(data: &[u8]) {
    let (sizes, data) = data.split_at(data.len().min(4));
    let limits = Limits {
        max_head: 2048,
        max_body: 4096,
        max_headers: 16,
        ..Limits::default()
    };
    let whole = read_all(&limits, data, &[usize::MAX]);
    let chunks: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 64) + 1).collect();
    let chunked = read_all(&limits, data, &chunks);
    assert_eq!(whole, chunked);
    for item in whole.0 {
        let bytes = match &item {
            Item::Request(r) => r.to_bytes(),
            Item::Response(r) => r.to_bytes(),
            _ => continue,
        };
        let mut reader = Reader::new(Limits::default());
        reader.push(&bytes);
        if let Ok(Some(back)) = reader.next_item() {
            match (&item, &back) {
                (Item::Request(a), Item::Request(b)) => {
                    assert_eq!((&a.method, &a.uri, &a.body), (&b.method, &b.uri, &b.body))
                }
                (Item::Response(a), Item::Response(b)) => {
                    assert_eq!((a.status, &a.body), (b.status, &b.body))
                }
                _ => {}
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(64) {
        let _ = Transport::parse_list(line);
        if let Ok(r) = Range::parse(line) {
            let _ = r.to_string();
        }
        let _ = crate::transport::SessionHeader::parse(line);
        let _ = crate::transport::RtpInfo::parse_list(line);
        let _ = crate::auth::Credentials::parse(line);
        let _ = crate::auth::Offered::parse(line);
        let _ = crate::message::Url::parse(line);
    }
}

fn read_all(limits: &Limits, mut data: &[u8], chunks: &[usize]) -> (Vec<Item>, bool) {
    let mut reader = Reader::new(limits.clone());
    let mut items = Vec::new();
    let mut k = 0;
    while !data.is_empty() {
        let size = chunks[k % chunks.len()].min(data.len());
        k += 1;
        let mut piece = &data[..size];
        data = &data[size..];
        while !piece.is_empty() {
            let n = reader.push(piece);
            piece = &piece[n..];
            loop {
                match reader.next_item() {
                    Ok(Some(i)) => items.push(i),
                    Ok(None) => break,
                    Err(_) => return (items, true),
                }
            }
            if n == 0 {
                return (items, true);
            }
        }
    }
    (items, false)
}

/// Feeds a server session arbitrary bytes in pieces (one length byte and
/// one time-step byte, in 100 ms units, before each), answering every
/// request the way the first byte of the piece says.
pub fn session(data: &[u8]) {
    let _ = session_statuses(data);
}

/// [`session`], returning the statuses the server answered, in order.
pub fn session_statuses(data: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut out = Reader::new(Limits::default());
    let settings = Settings {
        max_sessions: 2,
        max_tracks: 4,
        session_timeout: 2_000_000,
        idle_timeout: 2_000_000,
        ..Settings::default()
    };
    let mut s = ServerSession::new(Limits::default(), settings, 0);
    s.use_predictable_session_ids();
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(rest[0]) * 4;
        now += u64::from(rest[1]) * 100_000;
        rest = &rest[2..];
        let (piece, r) = rest.split_at(len.min(rest.len()));
        rest = r;
        let choice = piece.first().copied().unwrap_or(0);
        let _ = s.feed(now, piece);
        s.handle_timeout(now);
        while let Some(ev) = s.poll_event() {
            answer(&mut s, ev, choice);
        }
        while let Some(b) = s.poll_transmit() {
            collect(&mut out, &b, &mut statuses);
        }
        if choice == 0xFF {
            s.close();
            break;
        }
    }
    s.close();
    while s.poll_event().is_some() {}
    statuses
}

fn collect(reader: &mut Reader, mut b: &[u8], statuses: &mut Vec<u16>) {
    while !b.is_empty() {
        let n = reader.push(b);
        b = &b[n..];
        while let Ok(Some(item)) = reader.next_item() {
            if let Item::Response(r) = item {
                statuses.push(r.status);
            }
        }
        if n == 0 {
            return;
        }
    }
}

fn answer(s: &mut ServerSession, ev: Event, choice: u8) {
    let reject = choice % 5 == 4;
    match ev {
        Event::Describe { request, .. } if !reject => {
            let _ = s.answer_describe(request, "v=0\r\n");
        }
        Event::Announce { request, .. } if !reject => {
            let _ = s.accept_announce(request);
        }
        Event::Setup {
            request,
            transport,
            session,
            track,
            ..
        } if !reject => {
            let port = (transport.lower == Lower::Udp && !choice.is_multiple_of(3))
                .then_some((9000, 9001));
            let _ = s.accept_setup(
                request,
                SetupAnswer {
                    server_port: port,
                    ssrc: Some(1),
                },
            );
            if let Some((a, _)) = s.channels(&session, track) {
                let _ = s.send_interleaved(a, bytes::Bytes::from_static(b"\x80\x60"));
            }
        }
        Event::Play {
            request, tracks, ..
        } if !reject => {
            let starts: Vec<TrackStart> = tracks
                .iter()
                .map(|&t| TrackStart {
                    track: t,
                    seq: 1,
                    rtptime: 2,
                })
                .collect();
            let _ = s.accept_play(request, None, &starts);
        }
        Event::Record { request, .. } if !reject => {
            let _ = s.accept_record(request);
        }
        Event::Describe { request, .. }
        | Event::Announce { request, .. }
        | Event::Setup { request, .. }
        | Event::Play { request, .. }
        | Event::Record { request, .. } => {
            let status = [401, 404, 403, 453][usize::from(choice / 5) % 4];
            let _ = s.reject(request, status);
        }
        Event::Interleaved {
            session: Some(id), ..
        } => s.refresh(0, &id),
        _ => {}
    }
}
