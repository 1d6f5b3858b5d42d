//! `fs_op`: file-system operations on whole paths, run on the blocking pool.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rill_abi::*;

use super::{status_of, IoDone};

/// One `RILL_FS_*` operation with its paths resolved.
pub struct FsOp {
    pub op: u32,
    pub path: PathBuf,
    pub path2: Option<PathBuf>,
    pub arg: u64,
    pub token: u64,
}

/// Runs `op` (blocking).
pub fn fs_op(op: FsOp) -> IoDone {
    let t = op.token;
    let r: std::io::Result<i64> = match op.op {
        RILL_FS_REMOVE => std::fs::metadata(&op.path).and_then(|m| {
            std::fs::remove_file(&op.path)?;
            Ok(m.len() as i64)
        }),
        RILL_FS_RENAME => match &op.path2 {
            Some(to) => to
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::rename(&op.path, to))
                .map(|_| 0),
            None => return IoDone::err(t, RILL_ERR_INVALID),
        },
        RILL_FS_STAT => std::fs::metadata(&op.path).map(|m| m.len() as i64),
        RILL_FS_FREE => free_bytes(&op.path).inspect(|free| {
            let mut seen = super::stats::FREE.lock();
            let key = op.path.to_string_lossy().into_owned();
            if seen.len() < super::stats::MAX_FREE_PATHS || seen.contains_key(&key) {
                seen.insert(key, *free);
            }
        }),
        RILL_FS_TRUNCATE => std::fs::OpenOptions::new()
            .write(true)
            .open(&op.path)
            .and_then(|f| f.set_len(op.arg))
            .map(|_| op.arg as i64),
        _ => return IoDone::err(t, RILL_ERR_UNSUPPORTED),
    };
    match r {
        Ok(v) => IoDone::ok(t, v),
        Err(e) => IoDone::err(t, status_of(&e)),
    }
}

/// Bytes an unprivileged writer may still use on the file system holding
/// `path` (or its nearest existing ancestor).
pub fn free_bytes(path: &Path) -> std::io::Result<i64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero statvfs is a valid value for the kernel to fill.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path that outlives the call and `s`
    // a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((s.f_bavail as u64)
        .saturating_mul(s.f_frsize as u64)
        .min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        std::fs::write(&a, b"hello world").unwrap();
        let op = |op, path: &Path, path2: Option<PathBuf>, arg| {
            fs_op(FsOp {
                op,
                path: path.to_path_buf(),
                path2,
                arg,
                token: 7,
            })
        };
        let d = op(RILL_FS_STAT, &a, None, 0);
        assert_eq!((d.token, d.status, d.value), (7, RILL_OK, 11));
        let d = op(RILL_FS_TRUNCATE, &a, None, 5);
        assert_eq!(
            (d.status, std::fs::read(&a).unwrap()),
            (RILL_OK, b"hello".to_vec())
        );
        let b = dir.path().join("sub/b.bin");
        assert_eq!(op(RILL_FS_RENAME, &a, Some(b.clone()), 0).status, RILL_OK);
        assert_eq!(op(RILL_FS_STAT, &a, None, 0).status, RILL_ERR_NOT_FOUND);
        let d = op(RILL_FS_REMOVE, &b, None, 0);
        assert_eq!((d.status, d.value), (RILL_OK, 5));
        let d = op(RILL_FS_FREE, &dir.path().join("not/yet"), None, 0);
        assert!(d.status == RILL_OK && d.value > 0);
        assert_eq!(op(99, &b, None, 0).status, RILL_ERR_UNSUPPORTED);
    }
}
