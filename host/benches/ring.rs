//! Ring write and read: the cost a publisher pays per frame, and a reader.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rill::engine::ring::{Read, Ring, RingItem};

struct Item {
    pos: u64,
    key: bool,
    _payload: Bytes,
}

impl RingItem for Item {
    fn ring_pos(&self) -> u64 {
        self.pos
    }
    fn set_ring_pos(&mut self, pos: u64) {
        self.pos = pos
    }
    fn is_ring_key(&self) -> bool {
        self.key
    }
}

fn ring(c: &mut Criterion) {
    let payload = Bytes::from(vec![0u8; 10_000]);
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    let r = Ring::new(256);
    let mut n = 0u64;
    g.bench_function("write", |b| {
        b.iter(|| {
            n += 1;
            black_box(r.push(Item {
                pos: 0,
                key: n.is_multiple_of(60),
                _payload: payload.clone(),
            }));
        })
    });
    let r = Ring::new(256);
    for i in 0..256 {
        r.push(Item {
            pos: 0,
            key: i % 60 == 0,
            _payload: payload.clone(),
        });
    }
    let mut pos = 0u64;
    g.bench_function("read", |b| {
        b.iter(|| {
            pos = (pos + 1) % 256;
            match r.read(black_box(pos)) {
                Read::Item(x) => black_box(x),
                _ => unreachable!(),
            };
        })
    });
    g.bench_function("last_key", |b| b.iter(|| black_box(r.last_key())));
    g.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
