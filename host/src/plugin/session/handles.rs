//! What a session holds through the ABI: subscribers, publishers, UDP
//! sockets, and the media they deliver.

use super::*;

pub(crate) struct SubEntry {
    /// The session that owns this entry (it outlives its entries).
    pub owner: *const SessionShared,
    pub sub: Subscriber,
    filter: Filter,
    started: bool,
    ended: bool,
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Sends `hooks.on_play_done` when the entry goes.
    _done: Option<crate::plugin::admit::DoneNote>,
}

pub(crate) struct PubEntry {
    /// The session that owns this entry (it outlives its entries).
    pub owner: *const SessionShared,
    pub publisher: Publisher,
    ended: bool,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Sends `hooks.on_publish_done` when the entry goes.
    _done: Option<crate::plugin::admit::DoneNote>,
}

impl SessionShared {
    pub(crate) fn add_subscriber(
        &self,
        sub: Subscriber,
        filter: Filter,
        done: Option<crate::plugin::admit::DoneNote>,
    ) -> *mut RillSubscriber {
        let mut e = Box::new(SubEntry {
            owner: self,
            sub,
            filter,
            started: false,
            ended: false,
            delivered: 0,
            delivered_bytes: 0,
            _done: done,
        });
        let p = &mut *e as *mut SubEntry as *mut RillSubscriber;
        self.st.lock().subs.push(e);
        p
    }

    pub(crate) fn remove_subscriber(&self, p: *mut RillSubscriber) -> bool {
        let mut st = self.st.lock();
        let before = st.subs.len();
        st.subs
            .retain(|e| !std::ptr::eq(&**e, p as *const SubEntry));
        before != st.subs.len()
    }

    pub(crate) fn add_publisher(
        &self,
        publisher: Publisher,
        done: Option<crate::plugin::admit::DoneNote>,
    ) -> *mut RillPublisher {
        let closed = Box::pin(publisher.closed_owned());
        let mut e = Box::new(PubEntry {
            owner: self,
            publisher,
            ended: false,
            closed,
            _done: done,
        });
        let p = &mut *e as *mut PubEntry as *mut RillPublisher;
        self.st.lock().pubs.push(e);
        p
    }

    pub(crate) fn remove_publisher(&self, p: *mut RillPublisher) -> bool {
        let mut st = self.st.lock();
        let before = st.pubs.len();
        st.pubs
            .retain(|e| !std::ptr::eq(&**e, p as *const PubEntry));
        before != st.pubs.len()
    }

    /// Binds a UDP socket for this session (`udp_bind`): its datagrams
    /// come to this session's task as `on_udp_data`.
    pub(crate) fn bind_udp(
        self: &Arc<Self>,
        addr: std::net::SocketAddr,
        socket_id: u32,
    ) -> std::io::Result<*mut RillUdp> {
        let std_sock = crate::plugin::udp::bind(addr)?;
        let _g = self.inst.host.rt.enter();
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std_sock)?);
        let local = socket.local_addr()?.to_string();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The task needs the handle's address, which exists once boxed:
        // start it parked and hand the address over.
        let (tx, rx) = oneshot::channel::<usize>();
        let weak = Arc::downgrade(self);
        let task = self.inst.host.rt.spawn({
            let (socket, queued) = (socket.clone(), queued.clone());
            async move {
                let Ok(udp) = rx.await else { return };
                crate::plugin::udp::session_recv_loop(socket, udp, queued, move |d| {
                    weak.upgrade().is_some_and(|s| s.send(Ctl::Udp(d)))
                })
                .await
            }
        });
        let entry = Box::new(crate::plugin::udp::SessionUdp {
            owner: Arc::as_ptr(self),
            socket,
            socket_id,
            local,
            task: task.abort_handle(),
            queued,
        });
        let p = &*entry as *const crate::plugin::udp::SessionUdp;
        let _ = tx.send(p as usize);
        self.st.lock().udps.push(entry);
        Ok(p as *mut RillUdp)
    }

    /// Closes one of this session's UDP sockets (`udp_close`).
    pub(crate) fn close_udp(&self, p: *const crate::plugin::udp::SessionUdp) -> bool {
        let mut st = self.st.lock();
        let before = st.udps.len();
        st.udps.retain(|u| !std::ptr::eq(&**u, p));
        before != st.udps.len()
    }

    pub(super) fn poll_media(&self, cx: &mut Context<'_>) -> Poll<Media> {
        let mut st = self.st.lock();
        for e in st.subs.iter_mut() {
            if e.ended {
                continue;
            }
            if let Poll::Ready(r) = e.sub.poll_recv(cx) {
                let p = &mut **e as *mut SubEntry;
                return Poll::Ready(Media::Sub(p, r));
            }
        }
        for e in st.pubs.iter_mut() {
            if !e.ended && e.closed.as_mut().poll(cx).is_ready() {
                e.ended = true;
                let why = e
                    .publisher
                    .closed_reason()
                    .unwrap_or_else(|| SubscribeEnd::new(EndReason::Closed, "ended"));
                return Poll::Ready(Media::PubEnd(&mut **e as *mut PubEntry, why));
            }
        }
        Poll::Pending
    }

    /// Takes up to `budget` frames that are already queued, without
    /// waiting, while the output is below the high-water mark.
    ///
    /// Polls with a no-op waker: the loop's `select!` polls again with the
    /// task's own waker before it sleeps, so no wake-up is lost.
    pub(super) fn drain_media(self: &Arc<Self>, budget: usize) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..budget {
            if !self.st.lock().takes_media() {
                return;
            }
            match self.poll_media(&mut cx) {
                Poll::Ready(m) => self.on_media(m),
                Poll::Pending => return,
            }
        }
    }

    pub(super) fn on_media(self: &Arc<Self>, m: Media) {
        let (inst, user, conn) = (&self.inst, self.user(), self.conn_ptr());
        match m {
            Media::Sub(p, Ok(frame)) => {
                // Decide under the lock, call without it: the plugin may
                // close this subscriber from inside the callback.
                let (first, skip) = {
                    let mut st = self.st.lock();
                    // SAFETY: p points into a Box owned by st.subs; we hold
                    // the lock, and it was live when poll_media returned.
                    let e = unsafe { &mut *p };
                    let (skip, want) = e.filter.skip(&frame);
                    if want {
                        e.sub.want_codec();
                    }
                    let first = !e.started;
                    e.started = true;
                    if !skip {
                        st.streaming = true;
                        e.delivered += 1;
                        e.delivered_bytes += frame.payload().len() as u64;
                    }
                    (first, skip)
                };
                let sub = p as *mut RillSubscriber;
                if first {
                    let s = inst.call(|d, i| {
                        // SAFETY: plugin callback, its own session and handle.
                        d.on_subscribe_start
                            .map_or(RILL_OK, |f| unsafe { f(i, user, sub) })
                    });
                    self.check("on_subscribe_start", s);
                }
                if !skip && self.st.lock().subs.iter().any(|e| std::ptr::eq(&**e, p)) {
                    let s = inst.call(|d, i| {
                        // SAFETY: plugin callback; the frame is lent for the call.
                        d.on_frame.map_or(RILL_OK, |f| unsafe {
                            f(i, user, sub, frames::lend(&frame))
                        })
                    });
                    self.check("on_frame", s);
                }
            }
            Media::Sub(p, Err(end)) => {
                {
                    let _st = self.st.lock();
                    // SAFETY: as above.
                    unsafe { (*p).ended = true };
                }
                let why = end.to_string();
                let s = inst.call(|d, i| {
                    // SAFETY: plugin callback; `why` is lent for the call.
                    d.on_subscribe_end.map_or(RILL_OK, |f| unsafe {
                        f(
                            i,
                            user,
                            p as *mut RillSubscriber,
                            end_code(&end),
                            RillStr::from_str(&why),
                        )
                    })
                });
                self.check("on_subscribe_end", s);
            }
            Media::PubEnd(p, end) => {
                let (code, why) = (publish_end_code(&end), end.message);
                let s = inst.call(|d, i| {
                    // SAFETY: plugin callback; `why` is lent for the call.
                    d.on_publish_end.map_or(RILL_OK, |f| unsafe {
                        f(
                            i,
                            user,
                            p as *mut RillPublisher,
                            code,
                            RillStr::from_str(&why),
                        )
                    })
                });
                self.check("on_publish_end", s);
            }
        }
        let _ = conn;
    }
}

pub(super) enum Media {
    Sub(*mut SubEntry, Result<FrameRef, SubscribeEnd>),
    PubEnd(*mut PubEntry, SubscribeEnd),
}

/// Which frames of its stream a subscriber takes: kinds by its flags, and
/// audio by the codecs it can carry (a derived track instead of the
/// publisher's when it asks for that codec; see `audio_codecs`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Filter {
    pub flags: u32,
    /// Codecs the subscriber carries; all 0: the publisher's audio, any codec.
    pub audio: [u32; RILL_SUBSCRIBE_MAX_CODECS],
    /// The codec of the publisher's audio, once seen.
    source_audio: u32,
    /// `CodecWanted` was raised for this subscriber.
    wanted: bool,
}

impl Filter {
    pub(crate) fn new(flags: u32, audio: [u32; RILL_SUBSCRIBE_MAX_CODECS]) -> Filter {
        Filter {
            flags,
            audio,
            ..Filter::default()
        }
    }

    /// Whether to leave `f` out, and whether that left out the publisher's
    /// audio for want of a codec for the first time (raise `CodecWanted`).
    pub(crate) fn skip(&mut self, f: &FrameRef) -> (bool, bool) {
        let kind = rill_codec_kind(f.codec());
        let flags = self.flags;
        if (flags & RILL_SUBSCRIBE_NO_VIDEO != 0 && kind == RILL_TRACK_VIDEO)
            || (flags & RILL_SUBSCRIBE_NO_AUDIO != 0 && kind == RILL_TRACK_AUDIO)
            || (flags & RILL_SUBSCRIBE_NO_DATA != 0 && kind == RILL_TRACK_DATA)
        {
            return (true, false);
        }
        let derived = f.flags() & RILL_FRAME_DERIVED != 0;
        let any = self.audio.iter().all(|c| *c == 0);
        if any || kind != RILL_TRACK_AUDIO {
            return (derived, false);
        }
        let carries = self.audio.contains(&f.codec());
        if derived {
            let source_carried = self.source_audio != 0 && self.audio.contains(&self.source_audio);
            return (!carries || source_carried, false);
        }
        self.source_audio = f.codec();
        if carries {
            return (false, false);
        }
        let want = !std::mem::replace(&mut self.wanted, true);
        (true, want)
    }
}

pub(crate) fn end_code(end: &SubscribeEnd) -> u32 {
    match end.reason {
        EndReason::WaitTimeout => RILL_END_TIMEOUT,
        EndReason::PublisherGone => RILL_END_PUBLISHER_GONE,
        EndReason::Kicked => RILL_END_KICKED,
        EndReason::TooSlow => RILL_END_TOO_SLOW,
        EndReason::Shutdown => RILL_END_SHUTDOWN,
        EndReason::PublishTimeout => RILL_END_TIMEOUT,
        EndReason::StreamClosed | EndReason::Closed => RILL_END_NORMAL,
    }
}

/// The `on_publish_end` reason for a publisher the host ended: shutdown,
/// a publish timeout, or else kicked (by the API, a newer publisher, or
/// the stream's close).
pub(crate) fn publish_end_code(end: &SubscribeEnd) -> u32 {
    match end.reason {
        EndReason::Shutdown => RILL_END_SHUTDOWN,
        EndReason::PublishTimeout => RILL_END_TIMEOUT,
        _ => RILL_END_KICKED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(codec: u32, flags: u32) -> FrameRef {
        Arc::new(crate::engine::Frame::new(
            0,
            codec,
            flags,
            0,
            0,
            Default::default(),
        ))
    }

    #[test]
    fn the_audio_filter_takes_a_derived_track_only_for_a_codec_the_source_lacks() {
        let aac = frame(RILL_CODEC_AAC, RILL_FRAME_KEY);
        let opus = frame(RILL_CODEC_OPUS, RILL_FRAME_KEY | RILL_FRAME_DERIVED);
        let video = frame(RILL_CODEC_H264, RILL_FRAME_KEY);
        // No list: the publisher's audio, never a derived track.
        let mut any = Filter::new(0, [0; RILL_SUBSCRIBE_MAX_CODECS]);
        assert_eq!(any.skip(&aac), (false, false));
        assert_eq!(any.skip(&opus), (true, false));
        // Opus only: AAC left out (wanted once), the derived Opus taken.
        let mut webrtc = Filter::new(0, [RILL_CODEC_OPUS, RILL_CODEC_PCMU, 0, 0]);
        assert_eq!(webrtc.skip(&video), (false, false));
        // Before any of the source's audio: the derived track is taken.
        assert_eq!(webrtc.clone().skip(&opus), (false, false));
        assert_eq!(webrtc.skip(&aac), (true, true));
        assert_eq!(webrtc.skip(&aac), (true, false));
        assert_eq!(webrtc.skip(&opus), (false, false));
        // A player that carries the source's codec keeps it alone.
        let mut both = Filter::new(0, [RILL_CODEC_AAC, RILL_CODEC_OPUS, 0, 0]);
        assert_eq!(both.skip(&aac), (false, false));
        assert_eq!(both.skip(&opus), (true, false));
        // Kind flags still apply first.
        let mut mute = Filter::new(RILL_SUBSCRIBE_NO_AUDIO, [RILL_CODEC_OPUS, 0, 0, 0]);
        assert_eq!(mute.skip(&aac), (true, false));
    }
}
