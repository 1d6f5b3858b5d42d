//! Rows left open by a server that died (kill -9, power): found at the
//! periodic checks (unfinished rows nobody updated for a while, not this
//! instance's own), then closed. An fMP4, FLV or TS file is whole up to
//! its last fragment, tag or packet: its row gets the file's size. An MP4
//! has no `moov` yet: it is rebuilt from the sidecar index for the samples
//! whose bytes are in the file, appended after them, and the `mdat` size
//! patched; then the sidecar goes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rill_abi::sdk::{ConnId, Error, FileId, Recording, Result};
use rill_abi::*;
use rill_mp4::progressive::{self, Index, StoredSample};
use rill_mp4::TrackInfo;
use serde::Deserialize;

use crate::{lock, Pending, Record};

/// A row nobody updated for this long (and at least three checks) is
/// taken for abandoned; a live recorder updates its row every second,
/// frames or not.
const STALE: Duration = Duration::from_secs(3);
/// Largest sidecar read back (a day of samples).
const MAX_SIDECAR: usize = 256 << 20;

#[derive(Default)]
pub struct Repairs {
    /// A scan is waiting for the index.
    scanning: AtomicBool,
    /// Rows being repaired, or that could not be (not tried again).
    seen: Mutex<HashSet<u64>>,
    /// Rows this instance writes.
    pub own: Mutex<HashSet<u64>>,
}

/// A row of the index, as `recordings_query` gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    id: u64,
    stream: String,
    format: String,
    path: String,
    group: String,
    codecs: String,
    start_us: i64,
    end_us: i64,
    duration_us: i64,
}

impl Row {
    fn recording(&self) -> Recording {
        Recording {
            stream: self.stream.clone(),
            format: self.format.clone(),
            path: self.path.clone(),
            group: self.group.clone(),
            codecs: self.codecs.clone(),
            start_us: self.start_us,
            end_us: self.end_us,
            duration_us: self.duration_us,
            bytes: 0,
            done: true,
        }
    }
}

pub enum Step {
    List,
    /// The size of a file that is whole as it is.
    Stat(Row),
    /// Reading an MP4's sidecar.
    Sidecar {
        row: Row,
        file: FileId,
        buf: Vec<u8>,
    },
    /// The MP4's size, to keep the samples it holds.
    Mp4Size {
        row: Row,
        tracks: Vec<TrackInfo>,
        samples: Vec<StoredSample>,
    },
    /// Cut after the last whole sample; the `moov` follows.
    Truncated {
        row: Row,
        tracks: Vec<TrackInfo>,
        samples: Vec<StoredSample>,
        end: u64,
    },
    /// The repaired MP4 closed.
    Mp4Closed {
        row: Row,
        bytes: u64,
        duration_us: i64,
    },
}

pub fn sidecar_path(path: &str) -> String {
    format!("{path}.idx")
}

fn ask(r: &Record, step: Step, f: impl FnOnce(u64) -> Result<()>) {
    let t = r.token(Pending::Repair(step));
    if f(t).is_err() {
        if let Some(Pending::Repair(step)) = lock(&r.pending).remove(&t) {
            give_up(r, row_of(&step), "the host refused the call");
        }
    }
}

/// Looks for abandoned rows (one scan at a time).
pub fn scan(r: &Record) {
    if r.repairs.scanning.swap(true, Ordering::Relaxed) {
        return;
    }
    ask(r, Step::List, |t| {
        r.host
            .recordings_query(ConnId::INSTANCE, r#"{"unfinished": true, "limit": 100}"#, t)
    });
}

fn row_of(step: &Step) -> Option<&Row> {
    match step {
        Step::List => None,
        Step::Stat(row)
        | Step::Sidecar { row, .. }
        | Step::Mp4Size { row, .. }
        | Step::Truncated { row, .. }
        | Step::Mp4Closed { row, .. } => Some(row),
    }
}

/// A repair (or, without a row, the scan) ends without success.
fn give_up(r: &Record, row: Option<&Row>, why: &str) {
    match row {
        Some(row) => rill_log!(
            r.host,
            Error,
            "recording {} ({}) not repaired: {why}",
            row.id,
            row.path
        ),
        None => r.repairs.scanning.store(false, Ordering::Relaxed),
    }
}

/// Closes `row` in the index.
fn finish(r: &Record, row: &Row, bytes: u64, duration_us: i64) {
    let mut rec = row.recording();
    rec.bytes = bytes;
    rec.duration_us = duration_us.max(0);
    rec.end_us = rec.end_us.max(rec.start_us + rec.duration_us);
    let _ = r.host.recording_update(row.id, &rec);
    rill_log!(
        r.host,
        Info,
        "recording {} repaired: {} ({bytes} bytes)",
        row.id,
        row.path
    );
}

pub fn on_io(r: &Record, step: Step, result: Result<i64>, data: &[u8]) {
    let host = r.host;
    match step {
        Step::List => {
            r.repairs.scanning.store(false, Ordering::Relaxed);
            let Ok(_) = result else {
                return;
            };
            let rows: Vec<Row> = serde_json::from_slice(data).unwrap_or_default();
            let stale = STALE.max(r.cfg.check_interval * 3).as_micros() as i64;
            let now = host.wall_us();
            for row in rows {
                let mine = lock(&r.repairs.own).contains(&row.id);
                if mine || now - row.end_us < stale || !lock(&r.repairs.seen).insert(row.id) {
                    continue;
                }
                rill_log!(
                    host,
                    Warn,
                    "recording {} ({}) was left unfinished: repairing",
                    row.id,
                    row.path
                );
                if row.format == "mp4" {
                    match host.file_open(ConnId::INSTANCE, &sidecar_path(&row.path), RILL_FILE_READ)
                    {
                        Ok(file) => read_sidecar(r, row, file, Vec::new()),
                        Err(e) => rill_log!(host, Error, "recording {}: sidecar: {e}", row.id),
                    }
                } else {
                    let path = row.path.clone();
                    ask(r, Step::Stat(row), |t| {
                        host.fs_op(ConnId::INSTANCE, RILL_FS_STAT, &path, "", 0, t)
                    });
                }
            }
        }
        Step::Stat(row) => match result {
            Ok(size) => {
                let duration = row.duration_us.max(row.end_us - row.start_us);
                finish(r, &row, size.max(0) as u64, duration)
            }
            Err(Error::NOT_FOUND) => {
                rill_log!(host, Warn, "recording {}: {} is gone", row.id, row.path);
                finish(r, &row, 0, 0);
            }
            Err(e) => give_up(r, Some(&row), &e.to_string()),
        },
        Step::Sidecar { row, file, mut buf } => {
            let Ok(n) = result else {
                let _ = host.file_close(file, 0);
                // No sidecar: nothing to rebuild the moov from.
                give_up(r, Some(&row), "its sidecar index is unreadable");
                return;
            };
            buf.extend_from_slice(data);
            if n as u64 == RILL_FILE_MAX_READ && buf.len() < MAX_SIDECAR {
                return read_sidecar(r, row, file, buf);
            }
            let _ = host.file_close(file, 0);
            match Index::parse(&buf) {
                Ok((tracks, samples)) => {
                    let path = row.path.clone();
                    ask(
                        r,
                        Step::Mp4Size {
                            row,
                            tracks,
                            samples,
                        },
                        |t| host.fs_op(ConnId::INSTANCE, RILL_FS_STAT, &path, "", 0, t),
                    );
                }
                Err(e) => give_up(r, Some(&row), &e.to_string()),
            }
        }
        Step::Mp4Size {
            row,
            tracks,
            mut samples,
        } => {
            let size = match result {
                Ok(s) => s.max(0) as u64,
                Err(e) => return give_up(r, Some(&row), &e.to_string()),
            };
            // The samples whose bytes all made it to the disk.
            samples.retain(|s| s.offset.saturating_add(s.size as u64) <= size);
            let end = samples
                .iter()
                .map(|s| s.offset.saturating_add(s.size as u64))
                .max()
                .unwrap_or(progressive::HEADER_LEN);
            let path = row.path.clone();
            ask(
                r,
                Step::Truncated {
                    row,
                    tracks,
                    samples,
                    end,
                },
                |t| host.fs_op(ConnId::INSTANCE, RILL_FS_TRUNCATE, &path, "", end, t),
            );
        }
        Step::Truncated {
            row,
            tracks,
            samples,
            end,
        } => {
            if let Err(e) = result {
                return give_up(r, Some(&row), &e.to_string());
            }
            let Some((moov, patch)) = crate::writer::close_mp4(&tracks, &samples, end) else {
                return give_up(r, Some(&row), "no whole sample");
            };
            let duration = duration_of(&samples);
            let file = match host.file_open(ConnId::INSTANCE, &row.path, RILL_FILE_WRITE) {
                Ok(f) => f,
                Err(e) => return give_up(r, Some(&row), &e.to_string()),
            };
            let wrote = host
                .file_write(file, None, &moov)
                .and_then(|_| match patch {
                    crate::writer::Out::At(at, b) => host.file_write(file, Some(at), &b),
                    _ => Ok(()),
                });
            if let Err(e) = wrote {
                let _ = host.file_close(file, 0);
                return give_up(r, Some(&row), &e.to_string());
            }
            let bytes = end + moov.len() as u64;
            ask(
                r,
                Step::Mp4Closed {
                    row,
                    bytes,
                    duration_us: duration,
                },
                |t| host.file_close(file, t),
            );
        }
        Step::Mp4Closed {
            row,
            bytes,
            duration_us,
        } => match result {
            Ok(_) => {
                finish(r, &row, bytes, duration_us);
                let side = sidecar_path(&row.path);
                let t = r.token(Pending::Ignore);
                let _ = host.fs_op(ConnId::INSTANCE, RILL_FS_REMOVE, &side, "", 0, t);
            }
            Err(e) => give_up(r, Some(&row), &e.to_string()),
        },
    }
}

fn read_sidecar(r: &Record, row: Row, file: FileId, buf: Vec<u8>) {
    let at = buf.len() as u64;
    let host = r.host;
    ask(r, Step::Sidecar { row, file, buf }, |t| {
        host.file_read(file, at, RILL_FILE_MAX_READ, t)
    });
}

/// The span of the samples' decode times.
fn duration_of(samples: &[StoredSample]) -> i64 {
    let first = samples.iter().map(|s| s.dts).min().unwrap_or(0);
    let last = samples.iter().map(|s| s.dts).max().unwrap_or(0);
    last - first
}
