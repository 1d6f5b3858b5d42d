//! A caller and a listener connected through an in-memory link: no sockets,
//! a virtual clock in µs stepped by 1 ms, each connection's `tick` every
//! 10 ms, a fixed one-way delay and a deterministic datagram filter per
//! direction. Handshakes (clear and encrypted), timestamp-based delivery,
//! ARQ under loss, too-late drop, idle timeout, shutdown, key refresh and
//! both wrap-arounds (timestamps past 2^32 µs, sequence numbers past
//! 0x7FFFFFFF).

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use rill_srt::crypto::{kk, KeyMaterial};
use rill_srt::handshake::reject;
use rill_srt::packet::{
    write_data, Control, ControlPacket, DataPacket, Packet, HEADER_LEN, POSITION_SOLO,
};
use rill_srt::{Answer, Caller, Closed, Config, Connection, Error, Listener, Seq, Settings};

const MS: u64 = 1_000;
const SEC: u64 = 1_000_000;
/// The virtual clock's step.
const STEP: u64 = MS;
/// How often each side's timers run.
const TICK: u64 = 10 * MS;
/// Where the virtual clock starts (not 0: nothing should depend on it).
const T0: u64 = 7 * SEC;
/// The listener's socket id for its connection.
const LISTENER_ID: u32 = 0x0123_4567;
const PASS: &str = "a passphrase for the link tests";

/// xorshift64*: deterministic loss.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True `percent` % of the time.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Decides whether a datagram (offered at virtual time `now`) is lost.
type Filter = Box<dyn FnMut(u64, &[u8]) -> bool>;

/// One direction of the link.
struct Pipe {
    delay: u64,
    queue: VecDeque<(u64, Vec<u8>)>,
    filter: Filter,
    offered: u64,
    dropped: u64,
    /// Every datagram offered, when `record` is set.
    record: bool,
    log: Vec<Vec<u8>>,
    /// When the last datagram came out at the far end.
    last_arrival: u64,
}

impl Pipe {
    fn new(delay: u64) -> Pipe {
        Pipe {
            delay,
            queue: VecDeque::new(),
            filter: Box::new(|_, _| false),
            offered: 0,
            dropped: 0,
            record: false,
            log: Vec::new(),
            last_arrival: 0,
        }
    }

    fn push(&mut self, now: u64, d: &[u8]) {
        self.offered += 1;
        if self.record {
            self.log.push(d.to_vec());
        }
        if (self.filter)(now, d) {
            self.dropped += 1;
            return;
        }
        self.queue.push_back((now + self.delay, d.to_vec()));
    }

    fn pop(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.queue.front()?.0 > now {
            return None;
        }
        self.last_arrival = now;
        self.queue.pop_front().map(|(_, d)| d)
    }
}

/// What a test connects with.
struct Setup {
    caller: Config,
    listener: Config,
    stream_id: Option<String>,
    /// One-way delay, both directions.
    delay: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            caller: Config::default(),
            listener: Config::default(),
            stream_id: Some("#!::r=live/link,m=publish".into()),
            delay: 10 * MS,
        }
    }
}

impl Setup {
    fn latency(mut self, ms: u16) -> Setup {
        self.caller.latency_ms = ms;
        self.listener.latency_ms = ms;
        self
    }

    fn encrypted(mut self, key_len: usize) -> Setup {
        self.caller.passphrase = Some(PASS.into());
        self.caller.key_len = key_len;
        self.listener.passphrase = Some(PASS.into());
        self
    }
}

/// What the listener saw of the caller.
#[derive(Debug)]
struct Accepted {
    stream_id: String,
    encrypted: bool,
    caller_id: u32,
    /// The key length the caller's conclusion announced (its `encryption`
    /// field, key length / 8) and the length of the keys in its key
    /// material, bytes.
    key_len: Option<(usize, usize)>,
}

/// The two connections and the link between them.
struct Link {
    now: u64,
    caller: Connection,
    listener: Connection,
    /// Caller → listener.
    up: Pipe,
    /// Listener → caller.
    down: Pipe,
    /// Payloads delivered to each side, with when.
    at_listener: Vec<(u64, Bytes)>,
    at_caller: Vec<(u64, Bytes)>,
    /// When each side's `closed()` first became set.
    caller_closed_at: Option<u64>,
    listener_closed_at: Option<u64>,
}

fn from_addr() -> SocketAddr {
    "198.51.100.7:5000".parse().unwrap()
}

/// Runs the handshake over the link (no loss) starting at `start`; the
/// outcome on each side, or the caller's error.
fn handshake(setup: Setup, start: u64) -> Result<(Link, Accepted), Error> {
    let listener = Listener::new(setup.listener).unwrap();
    let mut caller = Caller::new(setup.caller, setup.stream_id, start).unwrap();
    let mut up = Pipe::new(setup.delay);
    let mut down = Pipe::new(setup.delay);
    let mut now = start;
    let mut accepted = None;
    let mut lconn = None;
    while now < start + 5 * SEC {
        if let Some(d) = caller.poll_transmit(now) {
            up.push(now, &d);
        }
        while let Some(d) = up.pop(now) {
            match listener.handle(now, from_addr(), &d) {
                Answer::Reply(b) => down.push(now, &b),
                Answer::Conclusion(p) => {
                    assert_eq!(p.from, from_addr());
                    let Ok(Packet::Control(ControlPacket {
                        control: Control::Handshake(h),
                        ..
                    })) = Packet::parse(&d)
                    else {
                        panic!("a conclusion")
                    };
                    let key_len = h.km.as_ref().map(|km| {
                        let km = KeyMaterial::parse(km).unwrap();
                        (usize::from(h.encryption) * 8, km.key_len)
                    });
                    accepted = Some(Accepted {
                        stream_id: p.stream_id.clone(),
                        encrypted: p.encrypted,
                        caller_id: p.caller_id,
                        key_len,
                    });
                    let (conn, resp) = p.accept(LISTENER_ID, now);
                    lconn = Some(conn);
                    down.push(now, &resp);
                }
                Answer::Ignore(why) => panic!("listener ignored a handshake: {why}"),
            }
        }
        while let Some(d) = down.pop(now) {
            if let Some(conn) = caller.handle(now, &d)? {
                let link = Link {
                    now,
                    caller: conn,
                    listener: lconn.take().expect("accepted before concluding"),
                    up,
                    down,
                    at_listener: Vec::new(),
                    at_caller: Vec::new(),
                    caller_closed_at: None,
                    listener_closed_at: None,
                };
                return Ok((link, accepted.unwrap()));
            }
        }
        now += STEP;
    }
    panic!("no handshake within 5 s");
}

fn connect(setup: Setup) -> (Link, Accepted) {
    handshake(setup, T0).expect("handshake")
}

impl Link {
    /// One step of the clock: arrivals, timers, deliveries, departures.
    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        while let Some(d) = self.up.pop(now) {
            self.listener.handle(now, &d).expect("valid datagram");
        }
        while let Some(d) = self.down.pop(now) {
            self.caller.handle(now, &d).expect("valid datagram");
        }
        if now.is_multiple_of(TICK) {
            self.caller.tick(now);
            self.listener.tick(now);
        }
        while let Some(p) = self.listener.poll_deliver(now) {
            self.at_listener.push((now, p));
        }
        while let Some(p) = self.caller.poll_deliver(now) {
            self.at_caller.push((now, p));
        }
        if self.caller.closed().is_some() {
            self.caller_closed_at.get_or_insert(now);
        }
        if self.listener.closed().is_some() {
            self.listener_closed_at.get_or_insert(now);
        }
        self.flush();
    }

    /// Puts what both sides have to send on the link.
    fn flush(&mut self) {
        while let Some(d) = self.caller.poll_transmit() {
            self.up.push(self.now, &d);
        }
        while let Some(d) = self.listener.poll_transmit() {
            self.down.push(self.now, &d);
        }
    }

    fn run(&mut self, duration: u64) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    /// Sends `n` payloads from each side (or only from `sides`), one every
    /// `interval`; the send times.
    fn stream(&mut self, from: usize, n: usize, interval: u64, sides: Sides) -> Vec<u64> {
        let mut times = Vec::with_capacity(n);
        for i in from..from + n {
            let now = self.now;
            if sides.caller {
                self.caller.send(now, &payload(b'c', i)).unwrap();
            }
            if sides.listener {
                self.listener.send(now, &payload(b'l', i)).unwrap();
            }
            times.push(now);
            self.flush();
            self.run(interval);
        }
        times
    }
}

#[derive(Clone, Copy)]
struct Sides {
    caller: bool,
    listener: bool,
}

const BOTH: Sides = Sides {
    caller: true,
    listener: true,
};

/// Payload `i` from side `tag`: the tag, its index at both ends, a pattern
/// in between, and a length that varies (up to the largest payload).
fn payload(tag: u8, i: usize) -> Vec<u8> {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        (0..rill_srt::MAX_PAYLOAD)
            .map(|j| (j as u8).wrapping_mul(31) ^ (j >> 8) as u8)
            .collect()
    });
    let len = [1316, 188, 1456, 17, 752][i % 5];
    let mut p = pattern[..len].to_vec();
    let index = (i as u64).to_be_bytes();
    p[0] = tag;
    p[1..9].copy_from_slice(&index);
    p[len - 8..].copy_from_slice(&index);
    p
}

fn index_of(p: &[u8]) -> usize {
    u64::from_be_bytes(p[1..9].try_into().unwrap()) as usize
}

/// Every payload `tag` sent at `sent[i - first]` was delivered, in order,
/// intact, no earlier than `latency` after it was sent and not much later
/// than latency + the link's delay + a tick.
fn assert_delivered(
    got: &[(u64, Bytes)],
    tag: u8,
    first: usize,
    sent: &[u64],
    latency: u64,
    delay: u64,
) {
    assert_eq!(
        got.len(),
        sent.len(),
        "payloads from {} delivered",
        tag as char
    );
    for (k, (at, p)) in got.iter().enumerate() {
        let i = first + k;
        assert_eq!(index_of(p), i, "in order");
        assert_eq!(&p[..], &payload(tag, i)[..], "payload {i} intact");
        let t = sent[k];
        assert!(
            *at >= t + latency,
            "payload {i} sent at {t} delivered at {at}, before the latency {latency}"
        );
        assert!(
            *at <= t + latency + delay + TICK,
            "payload {i} sent at {t} delivered late, at {at}"
        );
    }
}

fn seq_of(d: &[u8]) -> Option<Seq> {
    match Packet::parse(d) {
        Ok(Packet::Data(p)) => Some(p.seq),
        _ => None,
    }
}

// ---- handshake ----

#[test]
fn handshake_clear_with_stream_id() {
    let (link, acc) = connect(Setup::default());
    assert_eq!(acc.stream_id, "#!::r=live/link,m=publish");
    assert!(!acc.encrypted);
    assert_eq!(acc.key_len, None);
    let (c, l) = (link.caller.settings(), link.listener.settings());
    assert_eq!(acc.caller_id, c.local_id);
    assert_eq!(c.peer_id, LISTENER_ID);
    assert_eq!(l.local_id, LISTENER_ID);
    assert_eq!(l.peer_id, c.local_id);
    assert_eq!(c.isn, l.isn, "HSv5: one initial sequence number");
    assert_eq!(c.recv_latency, 120 * MS);
    assert_eq!(l.recv_latency, 120 * MS);
    assert!(c.keys.is_none() && l.keys.is_none());
    assert!(link.caller.closed().is_none() && link.listener.closed().is_none());
}

#[test]
fn handshake_without_stream_id_and_latency_is_the_larger() {
    let mut setup = Setup {
        stream_id: None,
        ..Setup::default()
    };
    setup.caller.latency_ms = 300;
    setup.listener.latency_ms = 80;
    let (link, acc) = connect(setup);
    assert_eq!(acc.stream_id, "");
    for s in [link.caller.settings(), link.listener.settings()] {
        assert_eq!(s.recv_latency, 300 * MS);
        assert_eq!(s.send_latency, 300 * MS);
    }
}

#[test]
fn handshake_encrypted_with_each_key_length() {
    for key_len in [16, 24, 32] {
        let (mut link, acc) = connect(Setup::default().encrypted(key_len));
        assert!(acc.encrypted, "{key_len}");
        assert_eq!(acc.key_len, Some((key_len, key_len)));
        assert!(link.caller.settings().keys.is_some());
        assert!(link.listener.settings().keys.is_some());
        // The payload is not on the wire in the clear.
        let now = link.now;
        let clear = payload(b'c', 0);
        link.caller.send(now, &clear).unwrap();
        let d = link.caller.poll_transmit().unwrap();
        let Ok(Packet::Data(p)) = Packet::parse(&d) else {
            panic!("a data packet")
        };
        assert_eq!(p.key, kk::EVEN, "{key_len}");
        assert_eq!(p.payload.len(), clear.len());
        assert_ne!(p.payload, &clear[..]);
        link.up.push(now, &d);
        let mut sent = vec![now];
        link.run(20 * MS);
        sent.extend(link.stream(1, 49, 20 * MS, BOTH));
        link.run(300 * MS);
        assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);
        assert_delivered(&link.at_caller, b'l', 1, &sent[1..], 120 * MS, 10 * MS);
        for s in [link.caller.stats(), link.listener.stats()] {
            assert_eq!(s.recv_undecryptable, 0, "{key_len}");
        }
    }
}

#[test]
fn handshake_refusals() {
    // A wrong passphrase.
    let mut setup = Setup::default().encrypted(16);
    setup.caller.passphrase = Some("not the listener's passphrase".into());
    let err = handshake(setup, T0).map(|_| ()).unwrap_err();
    assert_eq!(err, Error::Rejected(reject::BAD_SECRET));
    // One side encrypts, the other does not: either way.
    let mut setup = Setup::default().encrypted(16);
    setup.listener.passphrase = None;
    let err = handshake(setup, T0).map(|_| ()).unwrap_err();
    assert_eq!(err, Error::Rejected(reject::UNSECURE));
    let mut setup = Setup::default().encrypted(16);
    setup.caller.passphrase = None;
    let err = handshake(setup, T0).map(|_| ()).unwrap_err();
    assert_eq!(err, Error::Rejected(reject::UNSECURE));
}

// ---- delivery ----

#[test]
fn delivers_in_order_after_the_latency_both_ways() {
    let (mut link, _) = connect(Setup::default());
    let sent = link.stream(0, 500, 4 * MS, BOTH);
    link.run(300 * MS);
    assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 120 * MS, 10 * MS);
    for conn in [&link.caller, &link.listener] {
        let s = conn.stats();
        assert_eq!(s.sent_packets, 500);
        assert_eq!(s.recv_packets, 500);
        assert_eq!(
            (s.recv_lost, s.recv_dropped, s.sent_retransmitted),
            (0, 0, 0)
        );
        assert_eq!(conn.send_backlog(), 0, "everything acknowledged");
        // The RTT measured by ACK/ACKACK: twice the 10 ms delay, give or
        // take the ACK timer.
        assert!((15 * MS..=40 * MS).contains(&s.rtt), "rtt {}", s.rtt);
    }
}

#[test]
fn retransmission_recovers_five_percent_loss() {
    let (mut link, _) = connect(Setup::default().latency(200));
    // 5% of the datagrams in each direction lost (data, ACKs, NAKs,
    // retransmissions alike) while the stream runs; the last 100 ms of it
    // get through, so the last packets' losses are detected.
    let stop = link.now + 2_000 * 2 * MS - 100 * MS;
    for (pipe, seed) in [(&mut link.up, 1u64), (&mut link.down, 2)] {
        let mut rng = Prng(0x5EED_0000 + seed);
        pipe.filter = Box::new(move |now, _| now < stop && rng.chance(5));
    }
    let sent = link.stream(0, 2_000, 2 * MS, BOTH);
    link.run(500 * MS);
    assert_delivered(&link.at_listener, b'c', 0, &sent, 200 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 200 * MS, 10 * MS);
    for pipe in [&link.up, &link.down] {
        let rate = pipe.dropped as f64 / pipe.offered as f64;
        assert!((0.03..0.07).contains(&rate), "loss {rate}");
    }
    for conn in [&link.caller, &link.listener] {
        let s = conn.stats();
        assert!(s.recv_lost >= 50, "{s:?}");
        assert!(s.recv_retransmitted > 0 && s.recv_retransmitted <= s.recv_lost);
        assert!(s.sent_retransmitted >= s.recv_retransmitted, "{s:?}");
        assert!(s.naks_sent > 0 && s.naks_received > 0, "{s:?}");
        assert_eq!(s.recv_dropped, 0, "{s:?}");
        assert_eq!(s.recv_packets, 2_000, "{s:?}");
        assert_eq!(conn.send_backlog(), 0, "everything acknowledged");
    }
}

#[test]
fn a_packet_never_received_is_skipped_after_the_latency() {
    let (mut link, _) = connect(Setup::default());
    let lost = link.caller.settings().isn.add(50);
    // Packet 50 lost, first copy and every retransmission.
    link.up.filter = Box::new(move |_, d| seq_of(d) == Some(lost));
    let sent = link.stream(0, 200, 5 * MS, BOTH);
    link.run(300 * MS);
    // Everything else came, in order and on time.
    let mut expect: Vec<u64> = sent.clone();
    expect.remove(50);
    let got: Vec<(u64, Bytes)> = link.at_listener.clone();
    assert_eq!(got.len(), 199);
    assert_delivered(&got[..50], b'c', 0, &expect[..50], 120 * MS, 10 * MS);
    assert_delivered(&got[50..], b'c', 51, &expect[50..], 120 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 120 * MS, 10 * MS);
    let r = link.listener.stats();
    assert_eq!(r.recv_dropped, 1, "{r:?}");
    assert_eq!(r.recv_lost, 1, "{r:?}");
    assert_eq!(r.recv_retransmitted, 0, "{r:?}");
    assert!(r.naks_sent >= 2, "periodic NAKs asked again: {r:?}");
    let s = link.caller.stats();
    assert!(s.sent_retransmitted >= 2, "{s:?}");
    assert_eq!(link.caller.send_backlog(), 0, "the ACK moved past it");
    // And it goes on: more payloads after the drop.
    let more = link.stream(
        200,
        20,
        5 * MS,
        Sides {
            caller: true,
            listener: false,
        },
    );
    link.run(300 * MS);
    assert_delivered(
        &link.at_listener[199..],
        b'c',
        200,
        &more,
        120 * MS,
        10 * MS,
    );
}

// ---- end of a connection ----

#[test]
fn keepalives_hold_an_idle_connection_open() {
    let (mut link, _) = connect(Setup::default());
    link.run(12 * SEC);
    assert!(link.caller.closed().is_none() && link.listener.closed().is_none());
    // A keep-alive each way about every second.
    assert!(link.up.offered >= 10 && link.down.offered >= 10);
}

#[test]
fn a_silent_peer_times_out() {
    let (mut link, _) = connect(Setup::default());
    let sent = link.stream(0, 50, 10 * MS, BOTH);
    assert_eq!(sent.len(), 50);
    // The listener's datagrams stop reaching the caller.
    let cut = link.now;
    link.down.filter = Box::new(move |now, _| now >= cut);
    link.run(8 * SEC);
    let last = link.down.last_arrival;
    assert!(last <= cut + 10 * MS);
    let idle = Config::default().idle_timeout;
    assert_eq!(link.caller.closed(), Some(Closed::Timeout));
    let at = link.caller_closed_at.unwrap();
    assert!(
        at > last + idle && at <= last + idle + TICK,
        "closed at {at}, last datagram at {last}"
    );
    // A closed connection sends nothing more: the listener times out too,
    // one idle timeout after the caller's last keep-alive or ACK.
    link.run(6 * SEC);
    assert_eq!(link.listener.closed(), Some(Closed::Timeout));
    let lat = link.listener_closed_at.unwrap();
    assert!(lat > at && lat <= at + idle + TICK, "{lat} {at}");
    assert_eq!(link.caller.send(link.now, b"late"), Err(Error::Closed));
}

#[test]
fn shutdown_closes_the_other_side() {
    for caller_closes in [true, false] {
        let (mut link, _) = connect(Setup::default());
        link.stream(0, 20, 10 * MS, BOTH);
        let now = link.now;
        if caller_closes {
            link.caller.close(now);
        } else {
            link.listener.close(now);
        }
        link.flush();
        let (closer, peer) = if caller_closes {
            (&link.caller, &link.listener)
        } else {
            (&link.listener, &link.caller)
        };
        assert_eq!(closer.closed(), Some(Closed::Local));
        assert_eq!(peer.closed(), None);
        link.run(20 * MS);
        let (closer, peer) = if caller_closes {
            (&mut link.caller, &mut link.listener)
        } else {
            (&mut link.listener, &mut link.caller)
        };
        assert_eq!(peer.closed(), Some(Closed::Shutdown));
        assert_eq!(closer.closed(), Some(Closed::Local));
        assert_eq!(peer.send(now, b"x"), Err(Error::Closed));
        assert_eq!(closer.send(now, b"x"), Err(Error::Closed));
        // Closing again sends nothing more.
        closer.close(now);
        assert!(closer.poll_transmit().is_none());
    }
}

// ---- key refresh ----

/// A data packet from the caller built by hand: `payload` encrypted with
/// `keys`' (even) key, marked with key flag `kk`.
fn data_packet(
    link: &Link,
    seq: Seq,
    kk_flag: u8,
    keys: &rill_srt::crypto::Keys,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = payload.to_vec();
    assert!(keys.apply(kk::EVEN, seq, &mut body));
    let s = link.caller.settings();
    let mut d = Vec::with_capacity(HEADER_LEN + body.len());
    write_data(
        &DataPacket {
            seq,
            position: POSITION_SOLO,
            in_order: false,
            key: kk_flag,
            retransmitted: false,
            msg: 1,
            timestamp: (link.now - s.start) as u32,
            dest: s.peer_id,
            payload: &body,
        },
        &mut d,
    );
    d
}

#[test]
fn key_refresh_answers_kmrsp_and_takes_the_odd_key() {
    for key_len in [16, 24, 32] {
        let (mut link, _) = connect(Setup::default().encrypted(key_len));
        link.down.record = true;
        let sent = link.stream(0, 30, 10 * MS, BOTH);
        link.run(200 * MS);
        assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);

        // New key material: one key, announced as the odd one.
        let (mut km, new_keys) = KeyMaterial::generate(PASS, key_len).unwrap();
        km.kk = kk::ODD;
        let seq = link.caller.settings().isn.add(30);

        // Before the refresh the odd key is unknown: undecryptable.
        let odd = payload(b'c', 30);
        let d = data_packet(&link, seq, kk::ODD, &new_keys, &odd);
        link.up.push(link.now, &d);
        link.run(200 * MS);
        assert_eq!(link.listener.stats().recv_undecryptable, 1);
        assert_eq!(link.at_listener.len(), 30);

        // The refresh, from the caller.
        let km_bytes = km.to_vec();
        let req = ControlPacket {
            control: Control::KmReq(km_bytes.clone()),
            timestamp: (link.now - link.caller.settings().start) as u32,
            dest: LISTENER_ID,
        };
        link.down.log.clear();
        link.up.push(link.now, &req.to_vec());
        link.run(50 * MS);
        let rsp: Vec<_> = link
            .down
            .log
            .iter()
            .filter_map(|d| match Packet::parse(d) {
                Ok(Packet::Control(ControlPacket {
                    control: Control::KmRsp(b),
                    ..
                })) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(rsp, vec![km_bytes], "KMRSP echoes the key material");

        // Now packets under the odd key decrypt.
        let sent_at = link.now;
        for k in 0..5usize {
            let p = payload(b'c', 30 + k);
            let d = data_packet(&link, seq.add(k as u32), kk::ODD, &new_keys, &p);
            link.up.push(link.now, &d);
        }
        link.run(300 * MS);
        let got = &link.at_listener[30..];
        assert_eq!(got.len(), 5, "{key_len}");
        for (k, (at, p)) in got.iter().enumerate() {
            assert_eq!(&p[..], &payload(b'c', 30 + k)[..], "{key_len}");
            assert!(*at >= sent_at + 120 * MS);
        }
        assert_eq!(link.listener.stats().recv_undecryptable, 1);

        // Key material under another passphrase: refused (BADSECRET).
        let (bad, _) = KeyMaterial::generate("some other passphrase", key_len).unwrap();
        let req = ControlPacket {
            control: Control::KmReq(bad.to_vec()),
            timestamp: (link.now - link.caller.settings().start) as u32,
            dest: LISTENER_ID,
        };
        link.down.log.clear();
        link.up.push(link.now, &req.to_vec());
        link.run(50 * MS);
        assert!(link.down.log.iter().any(|d| matches!(
            Packet::parse(d),
            Ok(Packet::Control(ControlPacket { control: Control::KmRsp(b), .. })) if b == [0, 0, 0, 4]
        )));
    }
}

// ---- wrap-arounds ----

/// The connections a handshake made, re-made with other settings (the
/// same ids, latencies, keys and time bases): what a handshake with that
/// initial sequence number would have produced.
fn remake(link: &mut Link, f: impl Fn(&mut Settings)) {
    let now = link.now;
    let mut c = link.caller.settings().clone();
    let mut l = link.listener.settings().clone();
    f(&mut c);
    f(&mut l);
    link.caller = Connection::new(c, now);
    link.listener = Connection::new(l, now);
}

#[test]
fn sequence_numbers_wrap_past_0x7fffffff() {
    let (mut link, _) = connect(Setup::default().encrypted(16));
    let isn = Seq(0x7FFF_FF00);
    remake(&mut link, |s| s.isn = isn);
    // Lose the packets on both sides of the wrap (each once), and 3% of
    // everything else.
    let edge = [Seq(0x7FFF_FFFE), Seq(0x7FFF_FFFF), Seq(0), Seq(1)];
    for (pipe, seed) in [(&mut link.up, 3u64), (&mut link.down, 4)] {
        let mut rng = Prng(0xC0FF_EE00 + seed);
        let mut seen = Vec::new();
        pipe.filter = Box::new(move |_, d| {
            if let Some(s) = seq_of(d) {
                if edge.contains(&s) && !seen.contains(&s) {
                    seen.push(s);
                    return true;
                }
            }
            rng.chance(3)
        });
    }
    let sent = link.stream(0, 600, 3 * MS, BOTH);
    // The stream goes past the last number and on.
    assert_eq!(isn.add(600), Seq(600 - 0x100));
    link.filters_off();
    link.run(500 * MS);
    assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 120 * MS, 10 * MS);
    for conn in [&link.caller, &link.listener] {
        let s = conn.stats();
        assert!(s.recv_lost >= 4 && s.recv_retransmitted >= 4, "{s:?}");
        assert_eq!(s.recv_dropped, 0);
        assert_eq!(conn.send_backlog(), 0);
    }
}

impl Link {
    fn filters_off(&mut self) {
        self.up.filter = Box::new(|_, _| false);
        self.down.filter = Box::new(|_, _| false);
    }
}

/// 2^32 µs: about 71.6 minutes.
const TS_WRAP: u64 = 1 << 32;

#[test]
fn timestamps_wrap_past_2_32_us_with_a_steady_stream() {
    // A payload each way every 100 ms from the start, for 72 minutes:
    // each side's timestamps wrap once.
    let (mut link, _) = connect(Setup::default());
    let start = link.now;
    let n = ((TS_WRAP + 30 * SEC) / (100 * MS)) as usize;
    let sent = link.stream(0, n, 100 * MS, BOTH);
    link.run(300 * MS);
    assert!(link.now - link.caller.settings().start > TS_WRAP);
    assert!(link.now - link.listener.settings().start > TS_WRAP);
    assert!(link.now - start > TS_WRAP);
    assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 120 * MS, 10 * MS);
}

#[test]
fn timestamps_wrap_past_2_32_us_after_a_long_silence() {
    // Connected but silent (keep-alives only) for 71.5 minutes: the first
    // payloads carry timestamps past 2^31, then they wrap.
    let (mut link, _) = connect(Setup::default());
    link.run(TS_WRAP - 5 * SEC);
    assert!(link.caller.closed().is_none() && link.listener.closed().is_none());
    let sent = link.stream(0, 200, 50 * MS, BOTH);
    link.run(300 * MS);
    assert!(link.now - link.caller.settings().start > TS_WRAP);
    assert!(link.now - link.listener.settings().start > TS_WRAP);
    assert_delivered(&link.at_listener, b'c', 0, &sent, 120 * MS, 10 * MS);
    assert_delivered(&link.at_caller, b'l', 0, &sent, 120 * MS, 10 * MS);
}
