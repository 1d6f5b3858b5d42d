//! One open file: its operations run in order on the blocking pool, one
//! runner at a time, while callers only queue.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rill_abi::*;

use super::{status_of, Deliver, IoDone};

/// Bytes waiting for the disk in all files together; past it writes are
/// refused like a full per-file queue.
const MAX_QUEUED_TOTAL: u64 = 1 << 30;
static QUEUED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Bytes waiting for the disk in all files.
pub fn queued_total() -> u64 {
    QUEUED_TOTAL.load(Ordering::Relaxed)
}

/// What a file handle can be asked.
pub enum Op {
    Write { offset: u64, data: Vec<u8> },
    Read { offset: u64, len: u64, token: u64 },
    Sync { token: u64 },
    Close { token: u64 },
}

struct State {
    ops: VecDeque<Op>,
    running: bool,
    /// Bytes of queued writes.
    queued: u64,
    /// The first error met (0: none): every later call fails with it.
    error: i32,
    closed: bool,
}

/// The runner's side: the file itself and where appends go.
struct Disk {
    file: Option<File>,
    tried: bool,
    end: u64,
}

pub struct FileQueue {
    path: PathBuf,
    flags: u32,
    deliver: Deliver,
    rt: tokio::runtime::Handle,
    state: Mutex<State>,
    disk: Mutex<Disk>,
}

impl FileQueue {
    pub fn new(
        path: PathBuf,
        flags: u32,
        deliver: Deliver,
        rt: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(FileQueue {
            path,
            flags,
            deliver,
            rt,
            state: Mutex::new(State {
                ops: VecDeque::new(),
                running: false,
                queued: 0,
                error: 0,
                closed: false,
            }),
            disk: Mutex::new(Disk {
                file: None,
                tried: false,
                end: 0,
            }),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Queues `op`; refuses writes past the limits or after an error.
    pub fn submit(self: &Arc<Self>, op: Op) -> i32 {
        let mut st = self.state.lock();
        if st.closed {
            return RILL_ERR_CLOSED;
        }
        if let Op::Write { data, .. } = &op {
            if st.error != 0 {
                return st.error;
            }
            if self.flags & RILL_FILE_WRITE == 0 {
                return RILL_ERR_INVALID;
            }
            let n = data.len() as u64;
            if st.queued + n > RILL_FILE_MAX_QUEUED
                || QUEUED_TOTAL.load(Ordering::Relaxed) + n > MAX_QUEUED_TOTAL
            {
                return RILL_ERR_AGAIN;
            }
            st.queued += n;
            QUEUED_TOTAL.fetch_add(n, Ordering::Relaxed);
        }
        if matches!(op, Op::Close { .. }) {
            st.closed = true;
        }
        st.ops.push_back(op);
        if !st.running {
            st.running = true;
            let me = self.clone();
            self.rt.spawn_blocking(move || me.run());
        }
        RILL_OK
    }

    fn run(&self) {
        loop {
            let op = {
                let mut st = self.state.lock();
                match st.ops.pop_front() {
                    Some(op) => op,
                    None => {
                        st.running = false;
                        return;
                    }
                }
            };
            self.execute(op);
        }
    }

    fn fail(&self, status: i32) {
        // A missing file is an answer for the plugin (a first start has
        // nothing saved yet), not a failure of the storage.
        let missing = status == RILL_ERR_NOT_FOUND;
        if !missing {
            let counter = if status == RILL_ERR_NO_SPACE {
                &super::stats::NO_SPACE
            } else {
                &super::stats::FAILED
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut st = self.state.lock();
        if st.error == 0 {
            st.error = status;
            if missing {
                tracing::debug!(path = %self.path.display(), "storage: not found");
            } else {
                tracing::warn!(path = %self.path.display(), "storage: {}", rill_status_name(status));
            }
        }
    }

    fn error(&self) -> i32 {
        self.state.lock().error
    }

    /// Opens the file at the first operation.
    fn open(&self, disk: &mut Disk) {
        if disk.tried {
            return;
        }
        disk.tried = true;
        let f = self.flags;
        if f & RILL_FILE_CREATE != 0 {
            if let Some(dir) = self.path.parent() {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    self.fail(status_of(&e));
                    return;
                }
            }
        }
        let mut o = OpenOptions::new();
        o.read(f & RILL_FILE_READ != 0 || f & RILL_FILE_WRITE == 0)
            .write(f & RILL_FILE_WRITE != 0)
            .truncate(f & RILL_FILE_TRUNCATE != 0 && f & RILL_FILE_WRITE != 0);
        if f & RILL_FILE_EXCLUSIVE != 0 && f & RILL_FILE_WRITE != 0 {
            o.create_new(true);
        } else if f & RILL_FILE_CREATE != 0 && f & RILL_FILE_WRITE != 0 {
            o.create(true);
        }
        match o.open(&self.path).and_then(|file| {
            let len = file.metadata()?.len();
            Ok((file, len))
        }) {
            Ok((file, len)) => {
                disk.file = Some(file);
                disk.end = len;
            }
            Err(e) => self.fail(status_of(&e)),
        }
    }

    fn execute(&self, op: Op) {
        let mut disk = self.disk.lock();
        self.open(&mut disk);
        let Disk { file, end, .. } = &mut *disk;
        match op {
            Op::Write { offset, data } => {
                let n = data.len() as u64;
                if let (Some(file), 0) = (file.as_ref(), self.error()) {
                    let at = if offset == RILL_FILE_APPEND {
                        *end
                    } else {
                        offset
                    };
                    match file.write_all_at(&data, at) {
                        Ok(()) => {
                            *end = (*end).max(at + n);
                            super::stats::WRITTEN.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => self.fail(status_of(&e)),
                    }
                }
                let mut st = self.state.lock();
                st.queued -= n;
                QUEUED_TOTAL.fetch_sub(n, Ordering::Relaxed);
            }
            Op::Read { offset, len, token } => {
                let done = match (file.as_ref(), self.error()) {
                    (Some(file), 0) => read_at(file, offset, len, token),
                    (_, e) => IoDone::err(token, if e == 0 { RILL_ERR_IO } else { e }),
                };
                (self.deliver)(done);
            }
            Op::Sync { token } => {
                let done = match (file.as_ref(), self.error()) {
                    (Some(file), 0) => match file.sync_data() {
                        Ok(()) => IoDone::ok(token, *end as i64),
                        Err(e) => {
                            self.fail(status_of(&e));
                            IoDone::err(token, status_of(&e))
                        }
                    },
                    (_, e) => IoDone::err(token, if e == 0 { RILL_ERR_IO } else { e }),
                };
                (self.deliver)(done);
            }
            Op::Close { token } => {
                let size = *end as i64;
                let e = self.error();
                *file = None;
                if token != 0 {
                    (self.deliver)(match e {
                        0 => IoDone::ok(token, size),
                        e => IoDone::err(token, e),
                    });
                }
            }
        }
    }
}

fn read_at(file: &File, offset: u64, len: u64, token: u64) -> IoDone {
    let len = len.min(RILL_FILE_MAX_READ) as usize;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return IoDone::err(token, status_of(&e)),
        }
    }
    buf.truncate(got);
    IoDone {
        token,
        status: RILL_OK,
        value: got as i64,
        data: buf,
    }
}

impl Drop for FileQueue {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        QUEUED_TOTAL.fetch_sub(st.queued, Ordering::Relaxed);
    }
}
