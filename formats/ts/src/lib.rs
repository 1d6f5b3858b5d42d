//! MPEG-TS muxer and demuxer (work in progress).
