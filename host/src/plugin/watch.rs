//! Watching the plugins directory: which plugin files appeared, changed or
//! went away (see DESIGN.md, "Plugins at run time").
//!
//! The directory is watched, not the files (notify, non-recursive), so
//! installing by "write a temporary file, rename it over the plugin" is
//! seen as one change of the final name. Only plugin files count: the
//! platform's dylib extension, and not hidden or temporary names (see
//! [`is_plugin_file_name`]).
//!
//! A file renamed into a plugin name is complete by definition and is
//! reported at once. Any other change (a file written in place) is
//! reported only once its size and mtime hold still across two looks
//! [`WatchConfig::settle`] apart after its last event, so a file still
//! being written is not reported half-written. (A writer that pauses longer
//! than that can still be caught mid-way; the loader refuses a truncated
//! file as `NotALibrary` and the writer's next write brings another
//! `Changed`.)
//! A path whose (size, mtime, inode) equals the last one reported is not
//! reported again. The host compares content hashes itself ([`file_hash`]).
//!
//! Start the watcher before the initial [`scan`], so nothing that happens in
//! between is missed; the files present at start are taken as known (no
//! event until they change or go).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::library::{hex_digest, DYLIB_EXTENSION};

/// A change to a plugin file in the watched directory. Paths are
/// `dir.join(file_name)` with `dir` as given to [`PluginWatcher::start`]
/// (the same form [`scan`] returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFileEvent {
    /// The file appeared or its content may have changed, and it has held
    /// still: (re)load it if its hash differs from the loaded one.
    Changed(PathBuf),
    /// The file is gone (removed, or renamed to a non-plugin name): drain
    /// and stop the plugin loaded from it.
    Removed(PathBuf),
}

impl PluginFileEvent {
    /// The file the event is about.
    pub fn path(&self) -> &Path {
        match self {
            PluginFileEvent::Changed(p) | PluginFileEvent::Removed(p) => p,
        }
    }
}

/// Timings of a [`PluginWatcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// How long a file written in place must stay unchanged (no event,
    /// same size and mtime) before it is reported `Changed`. Renames into
    /// the directory do not wait.
    pub settle: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            settle: Duration::from_millis(200),
        }
    }
}

/// Why the watcher could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchError {
    /// The directory is missing or not a directory.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// notify could not watch it (e.g. the inotify watch limit).
    Notify {
        /// The directory.
        dir: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
    /// The watcher thread could not be spawned.
    Thread(io::Error),
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::Dir { dir, source } => {
                write!(
                    f,
                    "cannot watch plugins directory {}: {source}",
                    dir.display()
                )
            }
            WatchError::Notify { dir, source } => {
                write!(
                    f,
                    "cannot watch plugins directory {}: {source}",
                    dir.display()
                )
            }
            WatchError::Thread(e) => write!(f, "cannot start the plugin watcher thread: {e}"),
        }
    }
}

impl std::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WatchError::Dir { source, .. } => Some(source),
            WatchError::Notify { source, .. } => Some(source),
            WatchError::Thread(e) => Some(e),
        }
    }
}

/// Watches a plugins directory; dropping it stops the watch (the event
/// channel then closes).
pub struct PluginWatcher {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    // Dropped with the watcher: stops notify.
    _watcher: notify::RecommendedWatcher,
}

impl fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginWatcher")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        // The settle thread sees this within one poll and exits, dropping
        // the event sender (the receiver then yields None). Not joined: a
        // drop must not block an async task.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PluginWatcher {
    /// Watches `dir` with the default timings ([`WatchConfig::default`]).
    pub fn start(
        dir: &Path,
    ) -> Result<(PluginWatcher, mpsc::UnboundedReceiver<PluginFileEvent>), WatchError> {
        Self::start_with(dir, WatchConfig::default())
    }

    /// Watches `dir` (non-recursive) with the given timings.
    pub fn start_with(
        dir: &Path,
        config: WatchConfig,
    ) -> Result<(PluginWatcher, mpsc::UnboundedReceiver<PluginFileEvent>), WatchError> {
        let dir_err = |source| WatchError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        let meta = fs::metadata(dir).map_err(dir_err)?;
        if !meta.is_dir() {
            return Err(dir_err(io::Error::from(io::ErrorKind::NotADirectory)));
        }

        let (raw_tx, raw_rx) = std_mpsc::channel::<Notice>();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));

        let notify_tx = raw_tx.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let _ = notify_tx.send(Notice::from_event(res));
        })
        .map_err(|source| WatchError::Notify {
            dir: dir.to_path_buf(),
            source,
        })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                dir: dir.to_path_buf(),
                source,
            })?;

        // Known files: those present now (after the watch started, so a file
        // created in between is either here or in an event).
        let mut known = HashMap::new();
        if let Ok(paths) = scan(dir) {
            for p in paths {
                if let Some(state) = FileState::of(&p) {
                    known.insert(p, state);
                }
            }
        }
        let settler = Settler {
            dir: dir.to_path_buf(),
            settle: config.settle,
            known,
            pending: HashMap::new(),
            tx,
        };
        let thread_stop = stop.clone();
        thread::Builder::new()
            .name("rill-plugin-watch".into())
            .spawn(move || settler.run(raw_rx, &thread_stop))
            .map_err(WatchError::Thread)?;
        drop(raw_tx);

        Ok((
            PluginWatcher {
                dir: dir.to_path_buf(),
                stop,
                _watcher: watcher,
            },
            rx,
        ))
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether a file name is a plugin file: the platform's dylib extension
/// (`.so`, `.dylib`, `.dll`), not hidden (`.x.so`), not a temporary or
/// partial download (`.tmp`, `.part`, `~`: those fail the extension test
/// anyway, but names are checked whole).
pub fn is_plugin_file_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    if name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with('~')
    {
        return false;
    }
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if stem.is_empty() {
        return false;
    }
    if cfg!(any(windows, target_vendor = "apple")) {
        ext.eq_ignore_ascii_case(DYLIB_EXTENSION)
    } else {
        ext == DYLIB_EXTENSION
    }
}

/// The plugin files now in `dir` (regular files, or symlinks to them, with
/// a plugin file name), sorted: for the initial load.
pub fn scan(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !is_plugin_file_name(&entry.file_name()) {
            continue;
        }
        let path = dir.join(entry.file_name());
        // Follows symlinks: a link to a plugin file is a plugin file.
        if fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Lower-case hex SHA-256 of a file's content: the same value as
/// `LoadedLibrary::hash` for the same bytes.
pub fn file_hash(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    // Read in pieces: the watcher hashes every changed library, and a
    // whole-file buffer of megabytes would stay in the allocator's arena.
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > super::library::MAX_PLUGIN_FILE_SIZE {
            return Err(io::Error::other(format!(
                "{}: more than the {} bytes a plugin may have",
                path.display(),
                super::library::MAX_PLUGIN_FILE_SIZE
            )));
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex_digest(&hasher.finalize()))
}

/// What the settle thread hears from notify.
enum Notice {
    /// Paths that were renamed into place: complete, report at once.
    Complete(Vec<PathBuf>),
    /// Paths that had other events: report once they hold still.
    Paths(Vec<PathBuf>),
    /// Events may have been lost (queue overflow, watch error): rescan.
    Rescan(String),
}

impl Notice {
    fn from_event(res: notify::Result<notify::Event>) -> Notice {
        let event = match res {
            Ok(e) => e,
            Err(e) => return Notice::Rescan(e.to_string()),
        };
        if event.need_rescan() {
            return Notice::Rescan("the file system asked for a rescan".into());
        }
        match event.kind {
            // A rename's target: its content was complete before the rename.
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Notice::Complete(event.paths),
            // Both ends of a rename inside the directory: [from, to].
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
                Notice::Complete(event.paths[1..].to_vec())
            }
            _ => Notice::Paths(event.paths),
        }
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    mtime: Option<SystemTime>,
    ino: u64,
    dev: u64,
}

impl FileState {
    /// `None` when the path is not (or no longer) a regular file.
    fn of(path: &Path) -> Option<FileState> {
        let m = fs::metadata(path).ok()?;
        if !m.is_file() {
            return None;
        }
        #[cfg(unix)]
        let (ino, dev) = {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.dev())
        };
        #[cfg(not(unix))]
        let (ino, dev) = (0, 0);
        Some(FileState {
            len: m.len(),
            mtime: m.modified().ok(),
            ino,
            dev,
        })
    }
}

struct Pending {
    state: Option<FileState>,
    check_at: Instant,
}

/// The settle thread: turns notify's paths into events, at once for a
/// rename into place, else once files hold still.
struct Settler {
    dir: PathBuf,
    settle: Duration,
    /// The last state reported (or found at start) per present file.
    known: HashMap<PathBuf, FileState>,
    /// Paths waiting to hold still.
    pending: HashMap<PathBuf, Pending>,
    tx: mpsc::UnboundedSender<PluginFileEvent>,
}

impl Settler {
    fn run(mut self, rx: std_mpsc::Receiver<Notice>, stop: &AtomicBool) {
        let poll = (self.settle / 2).clamp(Duration::from_millis(5), Duration::from_millis(50));
        loop {
            if stop.load(Ordering::Relaxed) || self.tx.is_closed() {
                return;
            }
            match rx.recv_timeout(poll) {
                Ok(Notice::Complete(paths)) => {
                    for p in paths {
                        if !self.complete(&p) {
                            return;
                        }
                    }
                }
                Ok(Notice::Paths(paths)) => {
                    for p in paths {
                        self.touch(&p);
                    }
                }
                Ok(Notice::Rescan(why)) => {
                    tracing::warn!(dir = %self.dir.display(), "plugin watcher: {why}; rescanning");
                    self.rescan();
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                // notify is gone (watcher dropped).
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if !self.check_pending() {
                return;
            }
        }
    }

    /// A path had events: (re)start waiting for it to hold still.
    fn touch(&mut self, raw: &Path) {
        let Some(name) = raw.file_name() else {
            return;
        };
        if !is_plugin_file_name(name) {
            return;
        }
        let path = self.dir.join(name);
        let state = FileState::of(&path);
        self.pending.insert(
            path,
            Pending {
                state,
                check_at: Instant::now() + self.settle,
            },
        );
    }

    /// A path was renamed into place: report it now, unless it is what was
    /// last reported. Returns false when the receiver is gone.
    fn complete(&mut self, raw: &Path) -> bool {
        let Some(name) = raw.file_name() else {
            return true;
        };
        if !is_plugin_file_name(name) {
            return true;
        }
        let path = self.dir.join(name);
        let Some(state) = FileState::of(&path) else {
            // Renamed away again already: the settle path sorts it out.
            self.touch(&path);
            return true;
        };
        self.pending.remove(&path);
        if self.known.get(&path) == Some(&state) {
            return true;
        }
        self.known.insert(path.clone(), state);
        let event = PluginFileEvent::Changed(path);
        tracing::debug!(?event, "plugin watcher: renamed into place");
        self.tx.send(event).is_ok()
    }

    /// Events may have been lost: look at every plugin file, present or
    /// known.
    fn rescan(&mut self) {
        let mut paths: Vec<PathBuf> = scan(&self.dir).unwrap_or_default();
        paths.extend(self.known.keys().cloned());
        for p in paths {
            self.touch(&p);
        }
    }

    /// Reports the pending paths that held still (or vanished). Returns
    /// false when the receiver is gone.
    fn check_pending(&mut self) -> bool {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| p.check_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for path in due {
            let Some(mut p) = self.pending.remove(&path) else {
                continue;
            };
            let state = FileState::of(&path);
            if state != p.state {
                // Still moving: look again later.
                p.state = state;
                p.check_at = now + self.settle;
                self.pending.insert(path, p);
                continue;
            }
            let event = match state {
                None => {
                    if self.known.remove(&path).is_none() {
                        continue; // came and went unseen
                    }
                    PluginFileEvent::Removed(path)
                }
                Some(s) => {
                    if self.known.get(&path) == Some(&s) {
                        continue; // already reported (or present at start)
                    }
                    self.known.insert(path.clone(), s);
                    PluginFileEvent::Changed(path)
                }
            };
            tracing::debug!(?event, "plugin watcher");
            if self.tx.send(event).is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn so(name: &str) -> String {
        format!("{name}.{DYLIB_EXTENSION}")
    }

    #[test]
    fn plugin_file_names() {
        assert!(is_plugin_file_name(OsStr::new(&so("rtmp"))));
        assert!(is_plugin_file_name(OsStr::new(&so("librill_rtmp"))));
        assert!(is_plugin_file_name(OsStr::new(&so("a.b"))));
        assert!(!is_plugin_file_name(OsStr::new(&so(".hidden"))));
        assert!(!is_plugin_file_name(OsStr::new(&format!(
            "{}.tmp",
            so("x")
        ))));
        assert!(!is_plugin_file_name(OsStr::new(&format!(
            "{}.part",
            so("x")
        ))));
        assert!(!is_plugin_file_name(OsStr::new(&format!("{}~", so("x")))));
        assert!(!is_plugin_file_name(OsStr::new("x.txt")));
        assert!(!is_plugin_file_name(OsStr::new(DYLIB_EXTENSION)));
        assert!(!is_plugin_file_name(OsStr::new(&format!(
            ".{DYLIB_EXTENSION}"
        ))));
        assert!(!is_plugin_file_name(OsStr::new("noext")));
    }

    #[test]
    fn scan_lists_plugin_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            so("b"),
            so("a"),
            so(".h"),
            "c.txt".into(),
            format!("{}.tmp", so("d")),
        ] {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(so("dir"))).unwrap();
        let got = scan(dir.path()).unwrap();
        assert_eq!(
            got,
            vec![dir.path().join(so("a")), dir.path().join(so("b"))]
        );
    }

    #[test]
    fn file_hash_matches_hash_bytes() {
        use super::super::library::hash_bytes;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(b"abc").unwrap();
        drop(f);
        assert_eq!(file_hash(&p).unwrap(), hash_bytes(b"abc"));
        assert!(file_hash(&dir.path().join("missing")).is_err());
    }

    const WAIT: Duration = Duration::from_secs(10);

    async fn next(rx: &mut mpsc::UnboundedReceiver<PluginFileEvent>) -> PluginFileEvent {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no event within 10 s")
            .expect("watcher channel closed")
    }

    /// Nothing arrives for `d` (longer than two settle looks).
    async fn quiet(rx: &mut mpsc::UnboundedReceiver<PluginFileEvent>, d: Duration) {
        if let Ok(ev) = tokio::time::timeout(d, rx.recv()).await {
            panic!("unexpected event {ev:?}");
        }
    }

    #[tokio::test]
    async fn rename_from_temp_name_is_one_change() {
        let dir = tempfile::tempdir().unwrap();
        let (_w, mut rx) = PluginWatcher::start(dir.path()).unwrap();
        let tmp = dir.path().join(format!("{}.tmp", so("x")));
        fs::write(&tmp, vec![7u8; 4096]).unwrap();
        fs::rename(&tmp, dir.path().join(so("x"))).unwrap();
        assert_eq!(
            next(&mut rx).await,
            PluginFileEvent::Changed(dir.path().join(so("x")))
        );
        quiet(&mut rx, Duration::from_millis(1200)).await;
    }

    #[tokio::test]
    async fn slow_write_is_reported_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (_w, mut rx) = PluginWatcher::start(dir.path()).unwrap();
        let path = dir.path().join(so("slow"));
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&[1u8; 8192]).unwrap();
        f.flush().unwrap();
        let half = Instant::now();
        tokio::time::sleep(Duration::from_millis(80)).await;
        f.write_all(&[2u8; 8192]).unwrap();
        drop(f);
        let pause = half.elapsed();
        assert_eq!(next(&mut rx).await, PluginFileEvent::Changed(path.clone()));
        if pause < Duration::from_millis(180) {
            // The half file held still for less than the settle time: it
            // must not have been reported, so this was the only event.
            quiet(&mut rx, Duration::from_millis(1200)).await;
        } else {
            // A machine so loaded that the pause stretched may have reported
            // the half file; the whole file then follows.
            eprintln!("note: the pause between the halves stretched to {pause:?}");
            let _ = tokio::time::timeout(Duration::from_millis(1200), rx.recv()).await;
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), 16384);
    }

    /// A writer that writes a chunk every 50 ms: every write is an event,
    /// and the settle check holds the report back until the file is whole.
    #[tokio::test]
    async fn settle_check_holds_back_a_file_still_growing() {
        let dir = tempfile::tempdir().unwrap();
        let config = WatchConfig {
            settle: Duration::from_millis(200),
        };
        let (_w, mut rx) = PluginWatcher::start_with(dir.path(), config).unwrap();
        let path = dir.path().join(so("growing"));
        let mut f = fs::File::create(&path).unwrap();
        for _ in 0..12 {
            let wrote = Instant::now();
            f.write_all(&[3u8; 1000]).unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            while let Ok(ev) = rx.try_recv() {
                // Allowed only if this machine stalled the writer for longer
                // than the settle time (the file did hold still that long).
                assert!(
                    wrote.elapsed() >= config.settle,
                    "{ev:?} reported while the file was still being written"
                );
            }
        }
        drop(f);
        assert_eq!(next(&mut rx).await, PluginFileEvent::Changed(path.clone()));
        assert_eq!(fs::metadata(&path).unwrap().len(), 12_000);
        quiet(&mut rx, Duration::from_millis(600)).await;
    }

    #[tokio::test]
    async fn removal_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(so("gone"));
        fs::write(&path, b"present at start").unwrap();
        let (_w, mut rx) = PluginWatcher::start(dir.path()).unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(next(&mut rx).await, PluginFileEvent::Removed(path.clone()));
        // Added again: a change; then renamed away to a non-plugin name: gone.
        fs::write(&path, b"back").unwrap();
        assert_eq!(next(&mut rx).await, PluginFileEvent::Changed(path.clone()));
        fs::rename(&path, dir.path().join("gone.disabled")).unwrap();
        assert_eq!(next(&mut rx).await, PluginFileEvent::Removed(path));
        quiet(&mut rx, Duration::from_millis(800)).await;
    }

    #[tokio::test]
    async fn non_plugin_files_and_untouched_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join(so("present"));
        fs::write(&present, b"v1").unwrap();
        let (_w, mut rx) = PluginWatcher::start(dir.path()).unwrap();
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::write(dir.path().join(format!(".{}", so("hidden"))), b"x").unwrap();
        fs::write(dir.path().join(format!("{}.part", so("dl"))), b"x").unwrap();
        fs::write(dir.path().join(format!("{}~", so("bak"))), b"x").unwrap();
        quiet(&mut rx, Duration::from_millis(1200)).await;
        // A file present at start is reported when it changes.
        fs::write(&present, b"version 2").unwrap();
        assert_eq!(next(&mut rx).await, PluginFileEvent::Changed(present));
    }

    #[tokio::test]
    async fn dropping_the_watcher_closes_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut rx) = PluginWatcher::start(dir.path()).unwrap();
        assert_eq!(w.dir(), dir.path());
        drop(w);
        let end = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("channel not closed");
        assert_eq!(end, None);
    }

    #[test]
    fn start_refuses_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = PluginWatcher::start(&dir.path().join("nope")).unwrap_err();
        assert!(
            err.to_string().contains("cannot watch plugins directory"),
            "{err}"
        );
    }
}
