//! Files and the recording index through the host (ABI 1.4): every call
//! returns at once; the work runs on the host's I/O threads and its
//! result comes back at [`Plugin::on_io`](super::Plugin::on_io) with the
//! caller's token.

use std::time::Duration;

use super::{dur_us, rstr, ConnId, Error, Host, Result};
use crate::{RillRecording, RILL_FILE_APPEND, RILL_REC_DONE};

/// A file opened through [`Host::file_open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u64);

/// One row of the recording index, as [`Host::recording_add`] and
/// [`Host::recording_update`] take it. Times are wall-clock microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// The stream recorded, `app/name`.
    pub stream: String,
    /// The container (`fmp4`, `flv`, `mp4`, `ts`).
    pub format: String,
    /// The file, as given to [`Host::file_open`].
    pub path: String,
    /// The plugin's grouping for [`Host::recordings_expire`].
    pub group: String,
    /// RFC 6381 codecs, comma-separated.
    pub codecs: String,
    /// When the first frame in the file was received.
    pub start_us: i64,
    /// When the last one was.
    pub end_us: i64,
    /// The media duration in the file.
    pub duration_us: i64,
    /// The file's size.
    pub bytes: u64,
    /// The file is complete.
    pub done: bool,
}

impl Recording {
    fn raw(&self) -> RillRecording {
        let mut r = RillRecording::new(rstr(&self.stream), rstr(&self.format), rstr(&self.path));
        r.flags = if self.done { RILL_REC_DONE } else { 0 };
        r.group = rstr(&self.group);
        r.codecs = rstr(&self.codecs);
        r.start_us = self.start_us;
        r.end_us = self.end_us;
        r.duration_us = self.duration_us;
        r.bytes = self.bytes;
        r
    }
}

impl Host {
    /// Opens `path` (`RILL_FILE_*` flags) for session `owner` (where its
    /// completions go; [`ConnId::INSTANCE`] for the instance).
    pub fn file_open(&self, owner: ConnId, path: &str, flags: u32) -> Result<FileId> {
        let f = api!(self, file_open)?;
        let mut id = 0u64;
        // SAFETY: valid host context; `path` borrowed for the call.
        let rc = unsafe { f(self.raw(), owner.0, rstr(path), flags, &mut id) };
        Error::check(rc).map(|_| FileId(id))
    }

    /// Queues `data` (copied) at `offset`, or at the end with `None`.
    pub fn file_write(&self, file: FileId, offset: Option<u64>, data: &[u8]) -> Result<()> {
        let f = api!(self, file_write)?;
        let at = offset.unwrap_or(RILL_FILE_APPEND);
        // SAFETY: valid host context; `data` borrowed for the call.
        let rc = unsafe { f(self.raw(), file.0, at, data.as_ptr(), data.len()) };
        Error::check(rc).map(drop)
    }

    /// Reads `len` bytes at `offset`; they come with `token`.
    pub fn file_read(&self, file: FileId, offset: u64, len: u64, token: u64) -> Result<()> {
        let f = api!(self, file_read)?;
        // SAFETY: valid host context.
        Error::check(unsafe { f(self.raw(), file.0, offset, len, token) }).map(drop)
    }

    /// Flushes what was written to the disk; the result comes with `token`.
    pub fn file_sync(&self, file: FileId, token: u64) -> Result<()> {
        let f = api!(self, file_sync)?;
        // SAFETY: valid host context.
        Error::check(unsafe { f(self.raw(), file.0, token) }).map(drop)
    }

    /// Closes the file after what is queued; its first error, or its size,
    /// comes with `token` (0: no completion).
    pub fn file_close(&self, file: FileId, token: u64) -> Result<()> {
        let f = api!(self, file_close)?;
        // SAFETY: valid host context.
        Error::check(unsafe { f(self.raw(), file.0, token) }).map(drop)
    }

    /// A `RILL_FS_*` operation; the result comes with `token` on `owner`.
    pub fn fs_op(
        &self,
        owner: ConnId,
        op: u32,
        path: &str,
        path2: &str,
        arg: u64,
        token: u64,
    ) -> Result<()> {
        let f = api!(self, fs_op)?;
        // SAFETY: valid host context; strings borrowed for the call.
        let rc = unsafe { f(self.raw(), owner.0, op, rstr(path), rstr(path2), arg, token) };
        Error::check(rc).map(drop)
    }

    /// Adds a row to the recording index; returns its id.
    pub fn recording_add(&self, rec: &Recording) -> Result<u64> {
        let f = api!(self, recording_add)?;
        let raw = rec.raw();
        let mut id = 0u64;
        // SAFETY: valid host context; `raw` and its strings borrowed.
        let rc = unsafe { f(self.raw(), &raw, &mut id) };
        Error::check(rc).map(|_| id)
    }

    /// Updates row `id` (all but its stream, format and path).
    pub fn recording_update(&self, id: u64, rec: &Recording) -> Result<()> {
        let f = api!(self, recording_update)?;
        let raw = rec.raw();
        // SAFETY: valid host context; `raw` and its strings borrowed.
        Error::check(unsafe { f(self.raw(), id, &raw) }).map(drop)
    }

    /// Queries the index (`query`: a JSON object, see the ABI); the rows
    /// come as a JSON array with `token` on `owner`.
    pub fn recordings_query(&self, owner: ConnId, query: &str, token: u64) -> Result<()> {
        let f = api!(self, recordings_query)?;
        // SAFETY: valid host context; `query` borrowed.
        Error::check(unsafe { f(self.raw(), owner.0, rstr(query), token) }).map(drop)
    }

    /// Deletes the finished rows of `group` (and their files) older than
    /// `max_age`, then the oldest while the group holds more than
    /// `max_bytes` (0: no limit); the count comes with `token`.
    pub fn recordings_expire(
        &self,
        owner: ConnId,
        group: &str,
        max_age: Option<Duration>,
        max_bytes: u64,
        token: u64,
    ) -> Result<()> {
        let f = api!(self, recordings_expire)?;
        let age = max_age.map_or(0, |d| dur_us(d).min(i64::MAX as u64) as i64);
        // SAFETY: valid host context; `group` borrowed.
        let rc = unsafe { f(self.raw(), owner.0, rstr(group), age, max_bytes, token) };
        Error::check(rc).map(drop)
    }

    /// Asks the cluster registry which other node publishes `path` (ABI
    /// 1.5); `on_io(token)` on `owner` brings the answer (see
    /// [`ClusterOwner::parse`]). `Error::UNSUPPORTED`: no cluster.
    pub fn cluster_locate(&self, owner: ConnId, path: &str, token: u64) -> Result<()> {
        let f = api!(self, cluster_locate)?;
        // SAFETY: the path is lent for the call.
        Error::check(unsafe { f(self.raw(), owner.0, rstr(path), token) }).map(drop)
    }
}

/// Another node of the cluster that publishes a stream, as `cluster_locate`
/// answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOwner {
    /// Its `cluster.node_id`.
    pub node_id: String,
    /// `host:port` of its HTTP server.
    pub advertise: String,
}

impl ClusterOwner {
    /// Reads the answer's JSON object (`{"node_id": ..., "advertise": ...}`),
    /// without a JSON dependency: two string fields with no escapes.
    pub fn parse(data: &[u8]) -> Option<ClusterOwner> {
        let text = std::str::from_utf8(data).ok()?;
        let field = |name: &str| -> Option<String> {
            let key = format!("\"{name}\"");
            let rest = &text[text.find(&key)? + key.len()..];
            let rest = rest.trim_start().strip_prefix(':')?.trim_start();
            let rest = rest.strip_prefix('"')?;
            let value = &rest[..rest.find('"')?];
            (!value.contains('\\')).then(|| value.to_owned())
        };
        Some(ClusterOwner {
            node_id: field("node_id")?,
            advertise: field("advertise")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterOwner;

    #[test]
    fn cluster_owner_parses_the_hosts_json() {
        let o = ClusterOwner::parse(br#"{"node_id":"a","advertise":"127.0.0.1:8080"}"#).unwrap();
        assert_eq!(o.node_id, "a");
        assert_eq!(o.advertise, "127.0.0.1:8080");
        assert_eq!(ClusterOwner::parse(br#"{"node_id":"a"}"#), None);
        assert_eq!(ClusterOwner::parse(b"\xff"), None);
    }
}
