//! Fragmented MP4 / CMAF muxer (work in progress).
