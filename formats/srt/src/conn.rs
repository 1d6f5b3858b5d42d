//! An established SRT connection in live mode: the receiving side (buffer,
//! loss detection, ACK/NAK, timestamp-based delivery and too-late drop) and
//! the sending side (sequence numbers, the retransmission buffer, answers
//! to ACKs and NAKs), with keep-alive, idle timeout, shutdown and key
//! refresh. Time is an input (`now`, µs on any monotonic clock); datagrams
//! to send come out of [`Connection::poll_transmit`], payloads due for
//! delivery out of [`Connection::poll_deliver`].

use std::collections::VecDeque;

use bytes::Bytes;

use crate::crypto::{KeyMaterial, Keys};
use crate::packet::{
    write_data, AckInfo, Control, ControlPacket, DataPacket, Packet, HEADER_LEN, POSITION_SOLO,
};
use crate::seq::Seq;
use crate::Error;

/// Largest payload of one data packet (1500 − IP, UDP and SRT headers).
pub const MAX_PAYLOAD: usize = 1456;
/// Full ACK interval (libsrt's SYN interval).
const ACK_INTERVAL: u64 = 10_000;
const KEEPALIVE_INTERVAL: u64 = 1_000_000;
const MIN_NAK_INTERVAL: u64 = 20_000;
/// ACKs remembered for RTT measurement.
const ACK_HISTORY: usize = 64;
/// Received packets per drift-correction window.
const DRIFT_WINDOW: u32 = 1000;
/// RTT and its variance before any measurement, µs (libsrt's).
const INITIAL_RTT: u64 = 100_000;
const INITIAL_RTT_VAR: u64 = 50_000;

/// What both sides agreed in the handshake.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This side's socket id.
    pub local_id: u32,
    /// The peer's socket id (the destination of every packet sent).
    pub peer_id: u32,
    /// First sequence number, both directions.
    pub isn: Seq,
    /// Receive latency, µs (packets are delivered this long after their
    /// sender's timestamp).
    pub recv_latency: u64,
    /// The peer's receive latency, µs (packets older than this are not
    /// worth retransmitting).
    pub send_latency: u64,
    /// When this side's timestamps start (its `now`).
    pub start: u64,
    /// Local time minus the peer's timestamp at the handshake: maps peer
    /// timestamps to local time.
    pub peer_time_base: i64,
    /// Stream keys when encrypted.
    pub keys: Option<Keys>,
    /// The passphrase, to unwrap refreshed keys.
    pub passphrase: Option<String>,
    /// Receive buffer, packets.
    pub recv_buffer: usize,
    /// Send (retransmission) buffer, packets.
    pub send_buffer: usize,
    /// Silence from the peer after which the connection is closed, µs.
    pub idle_timeout: u64,
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Data packets received (first copies).
    pub recv_packets: u64,
    /// Payload bytes received.
    pub recv_bytes: u64,
    /// Packets found missing (each counted once).
    pub recv_lost: u64,
    /// Retransmitted packets that filled a hole.
    pub recv_retransmitted: u64,
    /// Packets given up on (too late for delivery, or dropped by the
    /// sender).
    pub recv_dropped: u64,
    /// Duplicates and packets behind the delivery point.
    pub recv_duplicates: u64,
    /// Packets beyond the receive buffer, discarded.
    pub recv_overflow: u64,
    /// Packets that failed decryption or came without a key.
    pub recv_undecryptable: u64,
    /// Data packets sent (first copies).
    pub sent_packets: u64,
    /// Payload bytes sent.
    pub sent_bytes: u64,
    /// Retransmissions sent.
    pub sent_retransmitted: u64,
    /// Packets dropped from the send buffer unacknowledged.
    pub sent_dropped: u64,
    /// Datagrams dropped before they were sent (the socket's queue stayed
    /// full).
    pub sent_unsent: u64,
    /// NAK reports sent.
    pub naks_sent: u64,
    /// NAK reports received.
    pub naks_received: u64,
    /// Smoothed round-trip time, µs.
    pub rtt: u64,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer sent SHUTDOWN.
    Shutdown,
    /// Nothing came from the peer for the idle timeout.
    Timeout,
    /// This side closed.
    Local,
}

struct Slot {
    payload: Bytes,
    time: i64,
}

struct Loss {
    first: Seq,
    last: Seq,
    last_nak: u64,
}

struct Sent {
    seq: Seq,
    datagram: Bytes,
    origin: u64,
}

/// One SRT connection.
pub struct Connection {
    s: Settings,
    stats: Stats,
    closed: Option<Closed>,
    out: VecDeque<Bytes>,
    last_recv: u64,
    last_send: u64,
    // receiving
    base: Seq,
    buf: VecDeque<Option<Slot>>,
    max: Option<Seq>,
    losses: Vec<Loss>,
    ack_number: u32,
    acks: VecDeque<(u32, u64)>,
    last_ack: u64,
    last_acked: Seq,
    drift_min: i64,
    drift_count: u32,
    rtt: u64,
    rtt_var: u64,
    rate_window: (u64, u64, u64),
    rate: (u32, u32),
    // sending
    next: Seq,
    msg: u32,
    sent: VecDeque<Sent>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("local_id", &self.s.local_id)
            .field("peer_id", &self.s.peer_id)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Connection {
    /// A connection with the handshake's outcome; `now` is when it opened.
    pub fn new(s: Settings, now: u64) -> Connection {
        Connection {
            base: s.isn,
            next: s.isn,
            last_acked: s.isn,
            stats: Stats::default(),
            closed: None,
            out: VecDeque::new(),
            last_recv: now,
            last_send: now,
            buf: VecDeque::new(),
            max: None,
            losses: Vec::new(),
            ack_number: 0,
            acks: VecDeque::new(),
            last_ack: now,
            drift_min: i64::MAX,
            drift_count: 0,
            rtt: INITIAL_RTT,
            rtt_var: INITIAL_RTT_VAR,
            rate_window: (now, 0, 0),
            rate: (0, 0),
            msg: 1,
            sent: VecDeque::new(),
            s,
        }
    }

    /// What was agreed.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            rtt: self.rtt,
            ..self.stats
        }
    }

    /// Why the connection ended, once it has.
    pub fn closed(&self) -> Option<Closed> {
        self.closed
    }

    /// Packets in the send buffer (sent, not yet acknowledged).
    pub fn send_backlog(&self) -> usize {
        self.sent.len()
    }

    fn timestamp(&self, now: u64) -> u32 {
        now.saturating_sub(self.s.start) as u32
    }

    fn control(&mut self, now: u64, control: Control) {
        let p = ControlPacket {
            control,
            timestamp: self.timestamp(now),
            dest: self.s.peer_id,
        };
        self.out.push_back(p.to_vec().into());
        self.last_send = now;
    }

    /// The next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Puts back a datagram [`Connection::poll_transmit`] gave that could
    /// not be sent now (the socket's queue is full): it goes first next
    /// time.
    pub fn unpoll_transmit(&mut self, datagram: Bytes) {
        self.out.push_front(datagram);
    }

    /// Datagrams waiting to be sent.
    pub fn transmit_backlog(&self) -> usize {
        self.out.len()
    }

    /// Drops the oldest waiting datagrams beyond `max`: data packets among
    /// them stay in the send buffer, so the peer's loss report brings them
    /// back while they are still useful. Returns how many were dropped.
    pub fn trim_transmit(&mut self, max: usize) -> usize {
        let n = self.out.len().saturating_sub(max);
        self.out.drain(..n);
        self.stats.sent_unsent += n as u64;
        n
    }

    /// Ends the connection: a SHUTDOWN goes out.
    pub fn close(&mut self, now: u64) {
        if self.closed.is_none() {
            self.control(now, Control::Shutdown);
            self.closed = Some(Closed::Local);
        }
    }

    /// Takes one datagram from the peer. Errors are for the datagram only
    /// (counted by the caller); the connection goes on.
    pub fn handle(&mut self, now: u64, datagram: &[u8]) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        let packet = Packet::parse(datagram)?;
        self.last_recv = now;
        match packet {
            Packet::Data(d) => self.on_data(now, d),
            Packet::Control(c) => self.on_control(now, c.control),
        }
        Ok(())
    }

    // ---- receiving ----

    /// The peer's 32-bit timestamp unwrapped: the value with the same low
    /// 32 bits nearest to the peer's clock now (as the time base maps it).
    /// Needs no history, so the first packets may come at any timestamp and
    /// after any silence (a timestamp compared with the last one seen is
    /// ambiguous once they are 2^31 µs, 36 minutes, apart).
    fn unwrap_ts(&self, now: u64, ts: u32) -> i64 {
        let expected = now as i64 - self.s.peer_time_base;
        expected + i64::from(ts.wrapping_sub(expected as u32) as i32)
    }

    fn on_data(&mut self, now: u64, d: DataPacket<'_>) {
        let offset = d.seq.diff(self.base);
        if offset < 0 {
            self.stats.recv_duplicates += 1;
            return;
        }
        let offset = offset as usize;
        if offset >= self.s.recv_buffer {
            self.stats.recv_overflow += 1;
            return;
        }
        if matches!(self.buf.get(offset), Some(Some(_))) {
            self.stats.recv_duplicates += 1;
            return;
        }
        let mut payload = d.payload.to_vec();
        match (&self.s.keys, d.key) {
            (_, 0) => {}
            (Some(keys), kk) => {
                if !keys.apply(kk, d.seq, &mut payload) {
                    self.stats.recv_undecryptable += 1;
                    return;
                }
            }
            (None, _) => {
                self.stats.recv_undecryptable += 1;
                return;
            }
        }
        let time = self.unwrap_ts(now, d.timestamp);
        if !d.retransmitted {
            let delta = now as i64 - (self.s.peer_time_base + time);
            self.drift_min = self.drift_min.min(delta);
            self.drift_count += 1;
            if self.drift_count >= DRIFT_WINDOW {
                // Follow the smallest transit time seen in the window: the
                // peer's clock drifting, or a first packet that came late.
                self.s.peer_time_base += self.drift_min.clamp(-5_000, 5_000);
                self.drift_min = i64::MAX;
                self.drift_count = 0;
            }
        }
        if self.buf.len() <= offset {
            self.buf.resize_with(offset + 1, || None);
        }
        self.stats.recv_bytes += payload.len() as u64;
        self.rate_window.1 += 1;
        self.rate_window.2 += payload.len() as u64;
        self.buf[offset] = Some(Slot {
            payload: payload.into(),
            time,
        });
        match self.max {
            Some(max) if !max.lt(d.seq) => {
                // Filled a hole.
                if self.remove_loss(d.seq) {
                    self.stats.recv_retransmitted += 1;
                }
                self.stats.recv_packets += 1;
            }
            _ => {
                self.stats.recv_packets += 1;
                let expected = self.max.map_or(self.base, |m| m.add(1));
                if expected.lt(d.seq) {
                    let (first, last) = (expected, d.seq.prev());
                    self.stats.recv_lost += last.diff(first) as u64 + 1;
                    self.losses.push(Loss {
                        first,
                        last,
                        last_nak: now,
                    });
                    self.stats.naks_sent += 1;
                    self.control(now, Control::Nak(vec![(first, last)]));
                }
                self.max = Some(d.seq);
            }
        }
    }

    /// Removes `seq` from the loss list; true if it was there.
    fn remove_loss(&mut self, seq: Seq) -> bool {
        let Some(i) = self
            .losses
            .iter()
            .position(|l| !seq.lt(l.first) && !l.last.lt(seq))
        else {
            return false;
        };
        let l = &mut self.losses[i];
        if l.first == seq && l.last == seq {
            self.losses.remove(i);
        } else if l.first == seq {
            l.first = seq.add(1);
        } else if l.last == seq {
            l.last = seq.prev();
        } else {
            let tail = Loss {
                first: seq.add(1),
                last: l.last,
                last_nak: l.last_nak,
            };
            l.last = seq.prev();
            self.losses.insert(i + 1, tail);
        }
        true
    }

    fn advance_base(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.base = self.base.add(n as u32);
        let base = self.base;
        self.losses.retain_mut(|l| {
            if l.last.lt(base) {
                return false;
            }
            if l.first.lt(base) {
                l.first = base;
            }
            true
        });
        if let Some(max) = self.max {
            if max.lt(base) {
                self.max = Some(base.prev());
            }
        }
    }

    fn due(&self, slot: &Slot, now: u64) -> bool {
        self.s.peer_time_base + slot.time + self.s.recv_latency as i64 <= now as i64
    }

    /// The next payload whose delivery time has come, in sequence order.
    /// Missing packets are skipped once a later packet is due (too-late
    /// drop).
    pub fn poll_deliver(&mut self, now: u64) -> Option<Bytes> {
        loop {
            match self.buf.front() {
                None => return None,
                Some(Some(slot)) => {
                    if !self.due(slot, now) {
                        return None;
                    }
                    let slot = self.buf.pop_front().flatten()?;
                    self.base = self.base.add(1);
                    self.advance_base(0);
                    return Some(slot.payload);
                }
                Some(None) => {
                    let k = self.buf.iter().position(|s| s.is_some())?;
                    let due = matches!(&self.buf[k], Some(s) if self.due(s, now));
                    if !due {
                        return None;
                    }
                    self.stats.recv_dropped += k as u64;
                    self.advance_base(k);
                }
            }
        }
    }

    /// When the next packet is due for delivery (local µs), if any is
    /// buffered.
    pub fn next_delivery(&self) -> Option<u64> {
        let slot = self.buf.iter().flatten().next()?;
        Some((self.s.peer_time_base + slot.time + self.s.recv_latency as i64).max(0) as u64)
    }

    fn ack_point(&self) -> Seq {
        let n = self
            .buf
            .iter()
            .position(|s| s.is_none())
            .unwrap_or(self.buf.len());
        self.base.add(n as u32)
    }

    fn on_control(&mut self, now: u64, c: Control) {
        match c {
            Control::Ack { number, next, info } => {
                while let Some(f) = self.sent.front() {
                    if f.seq.lt(next) {
                        self.sent.pop_front();
                    } else {
                        break;
                    }
                }
                if let Some(i) = info {
                    let (rtt, var) = (u64::from(i.rtt), u64::from(i.rtt_var));
                    if self.stats.recv_packets == 0 {
                        // Only the peer receives data: its estimate (from
                        // ACKACKs) is the RTT.
                        if rtt > 0 {
                            (self.rtt, self.rtt_var) = (rtt, var);
                        }
                    } else if rtt > 0 && (rtt, var) != (INITIAL_RTT, INITIAL_RTT_VAR) {
                        // Data both ways: this side measures the RTT from
                        // its own ACKACKs; the peer's estimate is smoothed
                        // in, never taken as is (libsrt does the same),
                        // or each side's samples would be overwritten by
                        // the other's stale value.
                        self.rtt_var = (self.rtt_var * 3 + self.rtt.abs_diff(rtt)) / 4;
                        self.rtt = (self.rtt * 7 + rtt) / 8;
                    }
                }
                if number != 0 {
                    self.control(now, Control::AckAck(number));
                }
            }
            Control::AckAck(number) => {
                if let Some(&(_, sent)) = self.acks.iter().find(|(n, _)| *n == number) {
                    let sample = now.saturating_sub(sent);
                    let diff = self.rtt.abs_diff(sample);
                    self.rtt_var = (self.rtt_var * 3 + diff) / 4;
                    self.rtt = (self.rtt * 7 + sample) / 8;
                }
            }
            Control::Nak(ranges) => {
                self.stats.naks_received += 1;
                self.retransmit(now, &ranges);
            }
            Control::DropReq { first, last, .. } => {
                // The sender gave up on these: forget them as losses; the
                // delivery skips them when later packets are due.
                let mut s = first;
                let mut n = 0;
                while !last.lt(s) && n < self.s.recv_buffer {
                    self.remove_loss(s);
                    s = s.add(1);
                    n += 1;
                }
            }
            Control::Shutdown => self.closed = Some(Closed::Shutdown),
            Control::KmReq(km) => {
                // A key refresh: take the new keys and echo the message.
                let keys = match (&self.s.passphrase, KeyMaterial::parse(&km)) {
                    (Some(p), Ok(m)) => m.unwrap(p).ok(),
                    _ => None,
                };
                match (keys, self.s.keys.as_mut()) {
                    (Some(new), Some(keys)) => {
                        keys.update(new);
                        self.control(now, Control::KmRsp(km));
                    }
                    _ => {
                        // SRT_KM_S_BADSECRET.
                        self.control(now, Control::KmRsp(vec![0, 0, 0, 4]));
                    }
                }
            }
            Control::Handshake(_) | Control::KeepAlive | Control::KmRsp(_) => {}
            Control::Other(..) => {}
        }
    }

    // ---- timers ----

    /// Runs the timers: ACK, periodic NAK, keep-alive, idle timeout, the
    /// send buffer's age limit. Call it at least every 10 ms while open.
    pub fn tick(&mut self, now: u64) {
        if self.closed.is_some() {
            return;
        }
        if now.saturating_sub(self.last_recv) > self.s.idle_timeout {
            self.closed = Some(Closed::Timeout);
            return;
        }
        let elapsed = now.saturating_sub(self.rate_window.0);
        if elapsed >= 1_000_000 {
            self.rate = (
                (self.rate_window.1 * 1_000_000 / elapsed) as u32,
                (self.rate_window.2 * 1_000_000 / elapsed) as u32,
            );
            self.rate_window = (now, 0, 0);
        }
        if now.saturating_sub(self.last_ack) >= ACK_INTERVAL {
            let point = self.ack_point();
            if point != self.last_acked || now.saturating_sub(self.last_ack) >= 100_000 {
                if self.max.is_some() {
                    self.send_ack(now, point);
                }
                self.last_ack = now;
            }
        }
        let interval = ((self.rtt + 4 * self.rtt_var) / 2).max(MIN_NAK_INTERVAL);
        let mut ranges = Vec::new();
        for l in self.losses.iter_mut() {
            if now.saturating_sub(l.last_nak) >= interval {
                l.last_nak = now;
                if ranges.len() < crate::packet::MAX_NAK_RANGES {
                    ranges.push((l.first, l.last));
                }
            }
        }
        if !ranges.is_empty() {
            self.stats.naks_sent += 1;
            self.control(now, Control::Nak(ranges));
        }
        // Unacknowledged packets older than the peer's latency cannot be
        // played any more: not worth keeping for retransmission.
        let max_age = self.s.send_latency + self.s.send_latency / 4 + 50_000;
        while let Some(f) = self.sent.front() {
            if now.saturating_sub(f.origin) > max_age {
                self.sent.pop_front();
                self.stats.sent_dropped += 1;
            } else {
                break;
            }
        }
        if now.saturating_sub(self.last_send) >= KEEPALIVE_INTERVAL {
            self.control(now, Control::KeepAlive);
        }
    }

    fn send_ack(&mut self, now: u64, point: Seq) {
        self.ack_number = self.ack_number.wrapping_add(1).max(1);
        let number = self.ack_number;
        if self.acks.len() == ACK_HISTORY {
            self.acks.pop_front();
        }
        self.acks.push_back((number, now));
        self.last_acked = point;
        let free = self.s.recv_buffer.saturating_sub(self.buf.len()) as u32;
        let info = AckInfo {
            rtt: self.rtt as u32,
            rtt_var: self.rtt_var as u32,
            buffer: free.max(2),
            packet_rate: self.rate.0,
            capacity: self.rate.0.max(1000),
            byte_rate: self.rate.1,
        };
        self.control(
            now,
            Control::Ack {
                number,
                next: point,
                info: Some(info),
            },
        );
    }

    // ---- sending ----

    /// Sends one payload (at most [`MAX_PAYLOAD`] bytes) as a data packet.
    /// The oldest unacknowledged packet is dropped when the send buffer is
    /// full.
    pub fn send(&mut self, now: u64, payload: &[u8]) -> Result<(), Error> {
        if self.closed.is_some() {
            return Err(Error::Closed);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::Malformed("payload larger than 1456 bytes"));
        }
        let seq = self.next;
        self.next = seq.add(1);
        let key = self.s.keys.as_ref().map_or(0, Keys::send_kk);
        let p = DataPacket {
            seq,
            position: POSITION_SOLO,
            in_order: false,
            key,
            retransmitted: false,
            msg: self.msg,
            timestamp: self.timestamp(now),
            dest: self.s.peer_id,
            payload,
        };
        self.msg = (self.msg + 1) & 0x03FF_FFFF;
        // One buffer, one copy: the header, the payload, encrypted in place.
        let mut d = Vec::with_capacity(HEADER_LEN + payload.len());
        write_data(&p, &mut d);
        if let Some(k) = &self.s.keys {
            k.apply(key, seq, &mut d[HEADER_LEN..]);
        }
        let d = Bytes::from(d);
        if self.sent.len() >= self.s.send_buffer {
            self.sent.pop_front();
            self.stats.sent_dropped += 1;
        }
        self.sent.push_back(Sent {
            seq,
            datagram: d.clone(),
            origin: now,
        });
        self.stats.sent_packets += 1;
        self.stats.sent_bytes += payload.len() as u64;
        self.out.push_back(d);
        self.last_send = now;
        Ok(())
    }

    fn retransmit(&mut self, now: u64, ranges: &[(Seq, Seq)]) {
        let Some(front) = self.sent.front().map(|s| s.seq) else {
            return;
        };
        let mut budget = self.sent.len();
        for &(first, last) in ranges {
            let start = first.diff(front).max(0) as usize;
            let end = last.diff(front);
            if end < 0 {
                continue;
            }
            let end = (end as usize).min(self.sent.len().saturating_sub(1));
            for i in start..=end {
                if budget == 0 {
                    return;
                }
                budget -= 1;
                let Some(p) = self.sent.get(i) else { break };
                let mut d = p.datagram.to_vec();
                d[4] |= 0x04; // the R bit
                self.out.push_back(d.into());
                self.stats.sent_retransmitted += 1;
            }
        }
        self.last_send = now;
    }
}
