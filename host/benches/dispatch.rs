//! Dispatch of one 30 fps stream (video + audio) to 1, 100 and 10 000
//! subscribers: nanoseconds per frame per subscriber, including waking the
//! subscriber; heap allocations per frame per subscriber on the dispatch path;
//! engine memory per idle subscriber. Counted with a counting allocator.
//!
//! Each subscriber has a registered waker (an Arc'd counter, the cost of a
//! notification without a scheduler behind it), as a parked player task has.
//! Between frames every subscriber takes its frames, as a player keeping up
//! does; only the dispatch is timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rill::engine::{Engine, EngineSettings, Frame, Subscriber, SubscriberInfo, TrackInfo};
use rill_abi::*;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counters
// are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l; new is non-zero.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct CountWake(AtomicU64);
impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct Setup {
    _rt: tokio::runtime::Runtime,
    engine: Engine,
    publisher: rill::engine::Publisher,
    subs: Vec<Subscriber>,
    waker: Waker,
    v: u32,
    a: u32,
    n: i64,
}

fn settings() -> EngineSettings {
    EngineSettings {
        publish_timeout: Duration::ZERO,
        max_lag: Duration::from_secs(3600),
        ..EngineSettings::default()
    }
}

impl Setup {
    fn new(subscribers: usize) -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let engine = Engine::manual(settings());
        let mut publisher = engine.publish("live/bench", Default::default()).unwrap();
        let v = publisher
            .add_track(TrackInfo {
                kind: RILL_TRACK_VIDEO,
                codec: RILL_CODEC_H264,
                ..Default::default()
            })
            .unwrap();
        let a = publisher
            .add_track(TrackInfo {
                kind: RILL_TRACK_AUDIO,
                codec: RILL_CODEC_AAC,
                ..Default::default()
            })
            .unwrap();
        let subs = (0..subscribers)
            .map(|_| {
                engine
                    .subscribe("live/bench", SubscriberInfo::default())
                    .unwrap()
            })
            .collect();
        let waker = Waker::from(Arc::new(CountWake(AtomicU64::new(0))));
        let mut s = Setup {
            _rt: rt,
            engine,
            publisher,
            subs,
            waker,
            v,
            a,
            n: 0,
        };
        // Warm up: queues, batch buffers and the ring reach their steady size.
        for _ in 0..600 {
            s.frame();
            s.engine.dispatch_now("live/bench");
            s.consume();
        }
        s
    }

    /// Publishes the next frame of a 30 fps video + 48 kHz AAC stream.
    fn frame(&mut self) {
        let n = self.n;
        self.n += 1;
        let (track, codec, flags, t) = if n % 5 < 2 {
            // two audio frames per three video frames, roughly 47:30
            (self.a, RILL_CODEC_AAC, RILL_FRAME_KEY, n * 13_333)
        } else {
            let key = if (n / 5) % 60 == 0 && n % 5 == 2 {
                RILL_FRAME_KEY
            } else {
                0
            };
            (self.v, RILL_CODEC_H264, key, n * 13_333)
        };
        let payload = Bytes::from_static(&[0u8; 1200]);
        self.publisher
            .write(Frame::new(track, codec, flags, t, t, payload))
            .unwrap();
    }

    /// Every subscriber takes its frames and re-registers its waker.
    fn consume(&mut self) {
        let mut cx = Context::from_waker(&self.waker);
        for s in &mut self.subs {
            while let Poll::Ready(r) = s.poll_recv(&mut cx) {
                r.unwrap();
            }
        }
    }
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    for n in [1usize, 100, 10_000] {
        let mut s = Setup::new(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("frame_to_subscribers", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    s.frame();
                    let t = Instant::now();
                    s.engine.dispatch_now("live/bench");
                    total += t.elapsed();
                    s.consume();
                }
                total
            })
        });
        // Allocations on the dispatch path, after warm-up.
        let frames = 300u64;
        let mut allocs = 0;
        let mut elapsed = Duration::ZERO;
        for _ in 0..frames {
            s.frame();
            let before = ALLOCS.load(Ordering::Relaxed);
            let t = Instant::now();
            s.engine.dispatch_now("live/bench");
            elapsed += t.elapsed();
            allocs += ALLOCS.load(Ordering::Relaxed) - before;
            s.consume();
        }
        println!(
            "dispatch/{n}: {:.1} ns per frame per subscriber, {:.4} heap allocations per frame per subscriber",
            elapsed.as_nanos() as f64 / (frames * n as u64) as f64,
            allocs as f64 / (frames * n as u64) as f64
        );
    }
    g.finish();

    // Engine memory per idle subscriber (subscribed, nothing flowing).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let engine = Engine::manual(settings());
    let _p = engine.publish("live/idle", Default::default()).unwrap();
    let n = 10_000;
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let subs: Vec<_> = (0..n)
        .map(|_| {
            engine
                .subscribe("live/idle", SubscriberInfo::default())
                .unwrap()
        })
        .collect();
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    println!(
        "idle subscriber: {} bytes of engine memory each ({} subscribers)",
        (after - before) / n,
        subs.len()
    );
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
