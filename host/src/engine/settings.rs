//! The engine's settings: the `publish`, `subscribe` and dispatcher parts of the
//! config, in the form the engine uses. They can change while running.

use std::time::Duration;

use super::lifecycle::Timeouts;
use super::track::RingSizes;
use crate::config::Config;

#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    pub publish_timeout: Duration,
    pub idle_timeout: Duration,
    pub delay_close_timeout: Duration,
    pub reconnect_grace: Duration,
    pub kick_existing: bool,
    pub max_ts_jump: Duration,
    pub video_ring: usize,
    pub audio_ring: usize,
    pub data_ring: usize,
    pub wait_timeout: Duration,
    pub max_lag: Duration,
    pub queue_frames: usize,
    /// Keep TCP_NODELAY on player connections once they stream (read by
    /// each session as it starts streaming).
    pub tcp_nodelay: bool,
    /// `subscribe.send_buffer`.
    pub send_buffer: usize,
    /// Dispatch workers; 0 = one per core. Fixed at start.
    pub dispatcher_workers: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings::from_config(&Config::default())
    }
}

impl EngineSettings {
    pub fn from_config(c: &Config) -> Self {
        EngineSettings {
            publish_timeout: c.publish.publish_timeout,
            idle_timeout: c.publish.idle_timeout,
            delay_close_timeout: c.publish.delay_close_timeout,
            reconnect_grace: c.publish.reconnect_grace,
            kick_existing: c.publish.kick_existing,
            max_ts_jump: c.publish.max_ts_jump,
            video_ring: c.publish.video_ring,
            audio_ring: c.publish.audio_ring,
            data_ring: c.publish.data_ring,
            wait_timeout: c.subscribe.wait_timeout,
            max_lag: c.subscribe.max_lag,
            queue_frames: c.subscribe.queue_frames,
            tcp_nodelay: c.subscribe.tcp_nodelay,
            send_buffer: c.subscribe.send_buffer,
            dispatcher_workers: c.dispatcher_workers,
        }
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            publish: self.publish_timeout,
            idle: self.idle_timeout,
            delay_close: self.delay_close_timeout,
            reconnect_grace: self.reconnect_grace,
            wait: self.wait_timeout,
        }
    }

    pub(crate) fn ring_sizes(&self) -> RingSizes {
        RingSizes {
            video: self.video_ring,
            audio: self.audio_ring,
            data: self.data_ring,
        }
    }
}
