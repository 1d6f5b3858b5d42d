//! The stream engine: frames, track rings with their GOP index, streams and
//! their lifecycle, the dispatcher, subscribers.

mod dispatch;
mod error;
mod events;
mod frame;
pub mod lifecycle;
mod manager;
pub mod ring;
mod settings;
mod stats;
mod stream;
mod subscriber;
mod sync;
pub mod timestamp;
mod track;

pub use error::EngineError;
pub use events::{StreamEvent, StreamEventKind};
pub use frame::{CacheError, Frame, FrameCache, FrameRef};
pub use lifecycle::Phase;
pub use manager::{
    validate_path, Engine, EngineTotals, Publisher, SubscriberSnapshot, MAX_PATH_LEN,
};
pub use settings::EngineSettings;
pub use stream::{
    unix_secs, PublisherInfo, PublisherSnapshot, StreamSnapshot, TrackSnapshot, MAX_TRACKS,
};
pub use subscriber::{EndReason, SubscribeEnd, Subscriber, SubscriberInfo};
pub use track::{fourcc_str, TrackInfo};

#[cfg(test)]
mod tests;

/// The wall clock in microseconds since the Unix epoch (what plugins get
/// from `clock_wall_us`).
pub fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
