//! RTMP for Rill.
