//! Storage for plugins (ABI 1.4): files written and read on the blocking
//! pool, one ordered queue per file, never on a caller's thread; and the
//! rule of which paths a plugin may touch.

mod file;
mod fsops;

use std::io;
use std::path::{Component, Path, PathBuf};

pub use file::{queued_total, FileQueue, Op};
pub use fsops::{fs_op, FsOp};
use rill_abi::*;

/// What plugins' storage did, for `/metrics`.
pub mod stats {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    use parking_lot::Mutex;

    /// Bytes written to files.
    pub static WRITTEN: AtomicU64 = AtomicU64::new(0);
    /// Writes that failed: the disk was full.
    pub static NO_SPACE: AtomicU64 = AtomicU64::new(0);
    /// Writes that failed otherwise.
    pub static FAILED: AtomicU64 = AtomicU64::new(0);
    /// The latest free space measured (`RILL_FS_FREE`), by path asked.
    pub static FREE: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());
    /// Paths kept in `FREE` at most (each plugin asks about a few).
    pub const MAX_FREE_PATHS: usize = 32;
}

/// The outcome of an operation, as `on_io` brings it.
#[derive(Debug, Clone, Default)]
pub struct IoDone {
    pub token: u64,
    pub status: i32,
    pub value: i64,
    pub data: Vec<u8>,
}

impl IoDone {
    pub fn ok(token: u64, value: i64) -> IoDone {
        IoDone {
            token,
            status: RILL_OK,
            value,
            data: Vec::new(),
        }
    }

    pub fn err(token: u64, status: i32) -> IoDone {
        IoDone {
            token,
            status,
            value: 0,
            data: Vec::new(),
        }
    }
}

/// Where completions go (the plugin glue routes them to a session).
pub type Deliver = std::sync::Arc<dyn Fn(IoDone) + Send + Sync>;

/// The ABI status for an I/O error.
pub fn status_of(e: &io::Error) -> i32 {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        return RILL_ERR_NO_SPACE;
    }
    match e.kind() {
        io::ErrorKind::NotFound => RILL_ERR_NOT_FOUND,
        io::ErrorKind::PermissionDenied => RILL_ERR_DENIED,
        io::ErrorKind::AlreadyExists => RILL_ERR_BUSY,
        io::ErrorKind::InvalidInput => RILL_ERR_INVALID,
        _ => RILL_ERR_IO,
    }
}

/// Which paths plugins may use: relative ones under `state_dir`, absolute
/// ones under `state_dir` or one of `storage.roots`; never `..`.
#[derive(Debug, Clone)]
pub struct Roots {
    state_dir: PathBuf,
    roots: Vec<PathBuf>,
}

impl Roots {
    /// `state_dir` and `roots` made absolute against the working directory.
    pub fn new(state_dir: &Path, roots: &[PathBuf]) -> Roots {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            }
        };
        Roots {
            state_dir: lexical(&abs(state_dir)),
            roots: roots.iter().map(|r| lexical(&abs(r))).collect(),
        }
    }

    /// The absolute path for a plugin's `path`, or `RILL_ERR_DENIED` /
    /// `RILL_ERR_INVALID`.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, i32> {
        if path.is_empty() || path.contains('\0') {
            return Err(RILL_ERR_INVALID);
        }
        let p = Path::new(path);
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(RILL_ERR_DENIED);
        }
        let full = if p.is_absolute() {
            lexical(p)
        } else {
            lexical(&self.state_dir.join(p))
        };
        let inside = |root: &PathBuf| full.starts_with(root) && full != *root;
        if inside(&self.state_dir) || self.roots.iter().any(inside) {
            Ok(full)
        } else {
            Err(RILL_ERR_DENIED)
        }
    }
}

/// `p` without `.` components (`..` is refused before this).
fn lexical(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_roots() {
        let r = Roots::new(Path::new("/var/lib/rill"), &[PathBuf::from("/srv/rec")]);
        assert_eq!(
            r.resolve("recordings/live/x/a.mp4").unwrap(),
            PathBuf::from("/var/lib/rill/recordings/live/x/a.mp4")
        );
        assert_eq!(
            r.resolve("/srv/rec/./a/b.flv").unwrap(),
            PathBuf::from("/srv/rec/a/b.flv")
        );
        assert_eq!(r.resolve("../etc/passwd"), Err(RILL_ERR_DENIED));
        assert_eq!(r.resolve("a/../../x"), Err(RILL_ERR_DENIED));
        assert_eq!(r.resolve("/etc/passwd"), Err(RILL_ERR_DENIED));
        assert_eq!(r.resolve("/srv/record/x"), Err(RILL_ERR_DENIED));
        assert_eq!(r.resolve("/srv/rec"), Err(RILL_ERR_DENIED));
        assert_eq!(r.resolve(""), Err(RILL_ERR_INVALID));
        assert_eq!(r.resolve("a\0b"), Err(RILL_ERR_INVALID));
    }
}
