//! The storage and recording-index calls of the host table (ABI 1.4):
//! checks and queueing here, the work in `crate::storage` and `crate::db`,
//! the completions back to the calling session through `on_io`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use rill_abi::*;

use super::api::{callback_guard, inst, text};
use super::instance::{InstMsg, Instance};
use super::session::Ctl;
use crate::db::{Query, Row};
use crate::storage::{self, Deliver, FileQueue, FsOp, IoDone, Op};

static NEXT_FILE: AtomicU64 = AtomicU64::new(1);

/// Completions for session `conn_id` (0: the instance) of `i`; dropped
/// when the session or the instance is gone.
pub(super) fn deliver_to(i: &Arc<Instance>, conn_id: u64) -> Deliver {
    let weak: Weak<Instance> = Arc::downgrade(i);
    Arc::new(move |done: IoDone| {
        let Some(i) = weak.upgrade() else {
            return;
        };
        if conn_id == 0 {
            i.send_instance(InstMsg::Io(done));
        } else if let Some(s) = i.sessions.get(&conn_id) {
            s.send(Ctl::Io(done));
        }
    })
}

/// `conn_id` names a session of `i` (or the instance).
pub(super) fn owner_ok(i: &Instance, conn_id: u64) -> bool {
    conn_id == 0 || i.sessions.contains_key(&conn_id)
}

pub(crate) unsafe extern "C" fn file_open(
    host: *mut RillHost,
    conn_id: u64,
    path: RillStr,
    flags: u32,
    file: *mut u64,
) -> i32 {
    callback_guard("file_open", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the path is lent for the call.
        let (Some(i), Some(path)) = (unsafe { inst(host) }, unsafe { text(path) }) else {
            return RILL_ERR_INVALID;
        };
        if file.is_null() || flags & (RILL_FILE_READ | RILL_FILE_WRITE) == 0 {
            return RILL_ERR_INVALID;
        }
        if !owner_ok(&i, conn_id) {
            return RILL_ERR_CLOSED;
        }
        let full = match i.host.roots.resolve(path) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let q = FileQueue::new(full, flags, deliver_to(&i, conn_id), i.host.rt.clone());
        let id = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        i.files.lock().insert(id, q);
        // SAFETY: a writable out-pointer (checked non-NULL).
        unsafe { *file = id };
        RILL_OK
    })
}

fn with_file(host: *mut RillHost, file: u64, take: bool) -> Result<Arc<FileQueue>, i32> {
    // SAFETY: per contract.
    let i = unsafe { inst(host) }.ok_or(RILL_ERR_INVALID)?;
    let mut files = i.files.lock();
    let f = if take {
        files.remove(&file)
    } else {
        files.get(&file).cloned()
    };
    f.ok_or(RILL_ERR_NOT_FOUND)
}

pub(crate) unsafe extern "C" fn file_write(
    host: *mut RillHost,
    file: u64,
    offset: u64,
    data: *const u8,
    len: usize,
) -> i32 {
    callback_guard("file_write", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: the plugin lends `len` bytes at `data` for the call.
        let Some(data) = (unsafe { super::api::bytes(data, len) }) else {
            return RILL_ERR_INVALID;
        };
        if len as u64 > RILL_FILE_MAX_QUEUED {
            return RILL_ERR_INVALID;
        }
        match with_file(host, file, false) {
            Ok(f) => f.submit(Op::Write {
                offset,
                data: data.to_vec(),
            }),
            Err(e) => e,
        }
    })
}

pub(crate) unsafe extern "C" fn file_read(
    host: *mut RillHost,
    file: u64,
    offset: u64,
    len: u64,
    token: u64,
) -> i32 {
    callback_guard(
        "file_read",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || match with_file(host, file, false) {
            Ok(f) => f.submit(Op::Read { offset, len, token }),
            Err(e) => e,
        },
    )
}

pub(crate) unsafe extern "C" fn file_sync(host: *mut RillHost, file: u64, token: u64) -> i32 {
    callback_guard(
        "file_sync",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || match with_file(host, file, false) {
            Ok(f) => f.submit(Op::Sync { token }),
            Err(e) => e,
        },
    )
}

pub(crate) unsafe extern "C" fn file_close(host: *mut RillHost, file: u64, token: u64) -> i32 {
    callback_guard(
        "file_close",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || match with_file(host, file, true) {
            Ok(f) => f.submit(Op::Close { token }),
            Err(e) => e,
        },
    )
}

pub(crate) unsafe extern "C" fn fs_op(
    host: *mut RillHost,
    conn_id: u64,
    op: u32,
    path: RillStr,
    path2: RillStr,
    arg: u64,
    token: u64,
) -> i32 {
    callback_guard("fs_op", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the paths are lent for the call.
        let (Some(i), Some(p1), Some(p2)) =
            (unsafe { inst(host) }, unsafe { text(path) }, unsafe {
                text(path2)
            })
        else {
            return RILL_ERR_INVALID;
        };
        if !(RILL_FS_REMOVE..=RILL_FS_TRUNCATE).contains(&op) {
            return RILL_ERR_UNSUPPORTED;
        }
        if !owner_ok(&i, conn_id) {
            return RILL_ERR_CLOSED;
        }
        let path = match i.host.roots.resolve(p1) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let path2 = match (op, p2) {
            (RILL_FS_RENAME, p2) => match i.host.roots.resolve(p2) {
                Ok(p) => Some(p),
                Err(e) => return e,
            },
            _ => None,
        };
        let deliver = deliver_to(&i, conn_id);
        let job = FsOp {
            op,
            path,
            path2,
            arg,
            token,
        };
        i.host
            .rt
            .spawn_blocking(move || deliver(storage::fs_op(job)));
        RILL_OK
    })
}

/// A plugin's row, checked: `None` when a string is not UTF-8 or the path
/// is refused.
fn row_of(i: &Instance, r: &RillRecording, id: i64) -> Result<Row, i32> {
    // SAFETY: the strings are lent for the call, per contract.
    let s = |v: RillStr| {
        unsafe { text(v) }
            .map(str::to_owned)
            .ok_or(RILL_ERR_INVALID)
    };
    let path = s(r.path)?;
    let path = if path.is_empty() {
        String::new()
    } else {
        i.host.roots.resolve(&path)?.to_string_lossy().into_owned()
    };
    Ok(Row {
        id,
        stream: s(r.stream)?,
        format: s(r.format)?,
        path,
        group: s(r.group)?,
        codecs: s(r.codecs)?,
        start_us: r.start_us,
        end_us: r.end_us.max(r.start_us),
        duration_us: r.duration_us.max(0),
        bytes: r.bytes.min(i64::MAX as u64) as i64,
        done: r.flags & RILL_REC_DONE != 0,
        // This node's: `Db::add` sets it.
        node: String::new(),
    })
}

pub(crate) unsafe extern "C" fn recording_add(
    host: *mut RillHost,
    rec: *const RillRecording,
    id: *mut u64,
) -> i32 {
    callback_guard("recording_add", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; `rec` is NULL or a struct lent for the call.
        let (Some(i), Some(rec)) = (unsafe { inst(host) }, unsafe { rill_read_sized(rec) }) else {
            return RILL_ERR_INVALID;
        };
        if id.is_null() {
            return RILL_ERR_INVALID;
        }
        let new = crate::db::new_id(crate::engine::wall_us());
        let row = match row_of(&i, &rec, new) {
            Ok(r) if !r.stream.is_empty() && !r.format.is_empty() && !r.path.is_empty() => r,
            Ok(_) => return RILL_ERR_INVALID,
            Err(e) => return e,
        };
        if !i.host.db.add(row) {
            return RILL_ERR_AGAIN;
        }
        // SAFETY: a writable out-pointer (checked non-NULL).
        unsafe { *id = new as u64 };
        RILL_OK
    })
}

pub(crate) unsafe extern "C" fn recording_update(
    host: *mut RillHost,
    id: u64,
    rec: *const RillRecording,
) -> i32 {
    callback_guard("recording_update", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: as in recording_add.
        let (Some(i), Some(rec)) = (unsafe { inst(host) }, unsafe { rill_read_sized(rec) }) else {
            return RILL_ERR_INVALID;
        };
        let mut rec = rec;
        rec.path = RillStr::EMPTY;
        let row = match row_of(&i, &rec, id as i64) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if i.host.db.update(row) {
            RILL_OK
        } else {
            RILL_ERR_AGAIN
        }
    })
}

pub(crate) unsafe extern "C" fn recordings_query(
    host: *mut RillHost,
    conn_id: u64,
    query: RillStr,
    token: u64,
) -> i32 {
    callback_guard("recordings_query", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the query is lent for the call.
        let (Some(i), Some(q)) = (unsafe { inst(host) }, unsafe { text(query) }) else {
            return RILL_ERR_INVALID;
        };
        let q: Query = match serde_json::from_str(if q.is_empty() { "{}" } else { q }) {
            Ok(q) => q,
            Err(e) => {
                i.log(RILL_LOG_WARN, &format!("recordings_query: {e}"));
                return RILL_ERR_INVALID;
            }
        };
        if !owner_ok(&i, conn_id) {
            return RILL_ERR_CLOSED;
        }
        let deliver = deliver_to(&i, conn_id);
        let queued = i.host.db.query(
            q,
            Box::new(move |r| {
                deliver(match r {
                    Ok(rows) => IoDone {
                        token,
                        status: RILL_OK,
                        value: rows.len() as i64,
                        data: serde_json::to_vec(&rows).unwrap_or_default(),
                    },
                    Err(e) => {
                        tracing::warn!("recordings_query: {e}");
                        IoDone::err(token, RILL_ERR_IO)
                    }
                })
            }),
        );
        if queued {
            RILL_OK
        } else {
            RILL_ERR_AGAIN
        }
    })
}

pub(crate) unsafe extern "C" fn recordings_expire(
    host: *mut RillHost,
    conn_id: u64,
    group: RillStr,
    max_age_us: i64,
    max_bytes: u64,
    token: u64,
) -> i32 {
    callback_guard(
        "recordings_expire",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract; the group is lent for the call.
            let (Some(i), Some(group)) = (unsafe { inst(host) }, unsafe { text(group) }) else {
                return RILL_ERR_INVALID;
            };
            if max_age_us < 0 {
                return RILL_ERR_INVALID;
            }
            if !owner_ok(&i, conn_id) {
                return RILL_ERR_CLOSED;
            }
            let deliver = deliver_to(&i, conn_id);
            let queued = i.host.db.expire(
                group.to_owned(),
                max_age_us,
                max_bytes,
                Box::new(move |r| {
                    deliver(match r {
                        Ok(n) => IoDone::ok(token, n as i64),
                        Err(e) => {
                            tracing::warn!("recordings_expire: {e}");
                            IoDone::err(token, RILL_ERR_IO)
                        }
                    })
                }),
            );
            if queued {
                RILL_OK
            } else {
                RILL_ERR_AGAIN
            }
        },
    )
}
