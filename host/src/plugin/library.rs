//! Loading one plugin file safely: copy it to a private, unique path, open it
//! with `dlopen(RTLD_NOW | RTLD_LOCAL)`, call its entry point and validate
//! the descriptor it returns (see DESIGN.md, "Plugins at run time").
//!
//! What this module guarantees to the rest of the host:
//!
//! - **The bytes loaded are the bytes hashed.** The file is read once; the
//!   hash, the private copy and therefore the code that runs all come from
//!   that one read, whatever happens to the file afterwards.
//! - **A new file is new code.** glibc's `dlopen` returns the handle it
//!   already has for a path (even after a rename over it), so every load
//!   opens a byte copy at a path this process never opened before.
//! - **A bad file is an error, not a crash.** Truncated or corrupt ELF files
//!   are refused before `dlopen` (mapping one and touching a page past the
//!   end of the file raises SIGBUS and kills the process); every other check
//!   is a [`LoadError`] naming the file and the reason.
//! - **Libraries are never unloaded.** `dlclose` is unsound for Rust
//!   cdylibs; every opened library, valid or not, stays mapped until the
//!   process exits, so a descriptor's fn pointers and strings stay valid
//!   forever.
//!
//! Loading blocks (file I/O, `dlopen`, the plugin's static initialisers and
//! its entry point): call [`load`] from a blocking thread
//! (`tokio::task::spawn_blocking`), not from an async task.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rill_abi::{
    rill_read_descriptor, rill_v1_0_size_of_descriptor, DescriptorError, RillPluginDescriptor,
    RillPluginEntryV1, RILL_ABI_MAJOR, RILL_ABI_MINOR,
};
use sha2::{Digest, Sha256};

/// The extension of plugin files on this platform (`so`, `dylib`, `dll`).
pub const DYLIB_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// The longest plugin name accepted (the ABI's `[a-z0-9_-]+`, capped here).
pub const MAX_NAME_LEN: usize = 64;

/// Plugin files larger than this are refused without being read whole.
pub const MAX_PLUGIN_FILE_SIZE: u64 = 1 << 30;

/// The entry symbol, NUL-terminated for `dlsym`.
const ENTRY_SYMBOL: &[u8] = b"rill_plugin_entry_v1\0";

/// Every private-copy path this process ever claimed (and so possibly
/// handed to `dlopen`). A path in here is never used again for another
/// copy, even after its file was removed: `dlopen` matches already-loaded
/// libraries by path name and would return the old code.
static EVER_OPENED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// One plugin library, loaded and validated. Cheap to clone; holds no
/// resource (the library itself is never unloaded).
#[derive(Clone)]
pub struct LoadedLibrary {
    /// The plugin's name (`[a-z0-9_-]{1,64}`): its identity across reloads
    /// and its config section.
    pub name: String,
    /// The plugin's version text, as it reports it.
    pub version: String,
    /// One line for operators; may be empty.
    pub description: String,
    /// ABI major the plugin was built with (always `RILL_ABI_MAJOR`).
    pub abi_major: u16,
    /// ABI minor the plugin was built with (may differ from the host's).
    pub abi_minor: u16,
    /// `RILL_PLUGIN_*` flags.
    pub flags: u32,
    /// A full copy of the plugin's descriptor: fields past the plugin's
    /// `struct_size` (a plugin older than the host) read as NULL / zero.
    /// Its fn pointers and strings point into the library, which is never
    /// unloaded: they stay valid for the life of the process. `Copy`,
    /// `Send` and `Sync`; which callbacks may run concurrently is the ABI's
    /// contract (see `RillPluginDescriptor`), not this struct's.
    pub descriptor: RillPluginDescriptor,
    /// The address the entry point returned (the plugin's own static
    /// descriptor), for logs and identity checks. Do not dereference it as a
    /// `RillPluginDescriptor`: it may be shorter than the host's.
    pub descriptor_addr: usize,
    /// The file in `plugins_dir` this was loaded from.
    pub source: PathBuf,
    /// The private byte copy that was actually opened.
    pub private_copy: PathBuf,
    /// Lower-case hex SHA-256 of the file's content (see [`hash_bytes`]).
    pub hash: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// The generation number given to [`load`].
    pub generation: u64,
    /// When the load finished.
    pub loaded_at: SystemTime,
    /// True when abi_stable's deep layout check ran and passed (a Rust
    /// plugin built with `abi-check`, same ABI minor as the host). False for
    /// C plugins, Rust plugins without the root module, and other minors:
    /// those were checked by magic, major and `struct_size` only.
    pub layout_checked: bool,
}

impl fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("description", &self.description)
            .field(
                "abi",
                &format_args!("{}.{}", self.abi_major, self.abi_minor),
            )
            .field("flags", &self.flags)
            .field(
                "descriptor_addr",
                &format_args!("{:#x}", self.descriptor_addr),
            )
            .field("source", &self.source)
            .field("private_copy", &self.private_copy)
            .field("hash", &self.hash)
            .field("size", &self.size)
            .field("generation", &self.generation)
            .field("loaded_at", &self.loaded_at)
            .field("layout_checked", &self.layout_checked)
            .finish()
    }
}

/// Why a plugin file was not loaded. Every message names the plugin file
/// (`path`) and says what is wrong with it in an operator's words.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// Reading the file, or writing or preparing its private copy, failed.
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// What was being done ("cannot read plugin file", ...).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Not a loadable shared library: not ELF, truncated, corrupt, built
    /// for another machine, or a dependency is missing (`dlopen`'s text).
    NotALibrary {
        /// The plugin file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file could have been changed by someone other than root or the
    /// user the server runs as: writable by others, or owned by another
    /// user (directly or through a symlink). Loading it would run their
    /// code as the server.
    Untrusted {
        /// The plugin file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The library does not export `rill_plugin_entry_v1`.
    NoEntry {
        /// The plugin file.
        path: PathBuf,
        /// `dlsym`'s text.
        reason: String,
    },
    /// `rill_plugin_entry_v1` returned NULL: the plugin refuses this host.
    EntryRefused {
        /// The plugin file.
        path: PathBuf,
    },
    /// The descriptor's magic is not `RILL_PLUGIN_MAGIC`.
    BadMagic {
        /// The plugin file.
        path: PathBuf,
        /// The magic found.
        found: u32,
    },
    /// Built for another ABI major.
    AbiMajor {
        /// The plugin file.
        path: PathBuf,
        /// The plugin's major.
        found: u16,
        /// The host's major (`RILL_ABI_MAJOR`).
        expected: u16,
    },
    /// The descriptor is smaller than ABI 1.0's.
    TooSmall {
        /// The plugin file.
        path: PathBuf,
        /// The descriptor's `struct_size`.
        struct_size: u32,
        /// ABI 1.0's descriptor size.
        min: usize,
    },
    /// The name is empty, longer than 64 bytes, or not `[a-z0-9_-]`.
    BadName {
        /// The plugin file.
        path: PathBuf,
        /// The name found (lossy, at most 64 bytes shown).
        name: String,
    },
    /// The version or description is not valid UTF-8.
    BadText {
        /// The plugin file.
        path: PathBuf,
    },
    /// A required callback (`create`, `destroy`) is NULL.
    MissingCallback {
        /// The plugin file.
        path: PathBuf,
        /// The callback's name.
        callback: &'static str,
    },
    /// abi_stable's deep layout check found the plugin's view of the ABI
    /// different from the host's.
    Layout {
        /// The plugin file.
        path: PathBuf,
        /// The gist of abi_stable's report: what differs and where (e.g.
        /// `mismatched type: expected u32, found i32 (at
        /// entry.__returns.0.flags)`).
        message: String,
        /// abi_stable's full report (hundreds of lines: every type layout
        /// on the way to the difference), for the log.
        report: String,
    },
}

impl LoadError {
    /// The plugin file (or, for some I/O errors, the private directory or
    /// copy) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Io { path, .. }
            | LoadError::NotALibrary { path, .. }
            | LoadError::Untrusted { path, .. }
            | LoadError::NoEntry { path, .. }
            | LoadError::EntryRefused { path }
            | LoadError::BadMagic { path, .. }
            | LoadError::AbiMajor { path, .. }
            | LoadError::TooSmall { path, .. }
            | LoadError::BadName { path, .. }
            | LoadError::BadText { path }
            | LoadError::MissingCallback { path, .. }
            | LoadError::Layout { path, .. } => path,
        }
    }

    /// A short stable identifier of the variant, for the API and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::Io { .. } => "io",
            LoadError::NotALibrary { .. } => "not_a_library",
            LoadError::Untrusted { .. } => "untrusted",
            LoadError::NoEntry { .. } => "no_entry",
            LoadError::EntryRefused { .. } => "entry_refused",
            LoadError::BadMagic { .. } => "bad_magic",
            LoadError::AbiMajor { .. } => "abi_major",
            LoadError::TooSmall { .. } => "too_small",
            LoadError::BadName { .. } => "bad_name",
            LoadError::BadText { .. } => "bad_text",
            LoadError::MissingCallback { .. } => "missing_callback",
            LoadError::Layout { .. } => "layout",
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io {
                path,
                action,
                source,
            } => write!(f, "{}: {action}: {source}", path.display()),
            LoadError::NotALibrary { path, reason } => write!(
                f,
                "plugin {}: not a loadable shared library: {reason}",
                path.display()
            ),
            LoadError::Untrusted { path, reason } => write!(
                f,
                "plugin {}: refused: {reason}",
                path.display()
            ),
            LoadError::NoEntry { path, reason } => write!(
                f,
                "plugin {}: not a Rill plugin: it does not export `rill_plugin_entry_v1` ({reason})",
                path.display()
            ),
            LoadError::EntryRefused { path } => write!(
                f,
                "plugin {}: its entry point returned NULL: it refuses to run on this host \
                 (ABI {RILL_ABI_MAJOR}.{RILL_ABI_MINOR})",
                path.display()
            ),
            LoadError::BadMagic { path, found } => write!(
                f,
                "plugin {}: not a Rill plugin descriptor: magic {found:#010x}, expected {:#010x}",
                path.display(),
                rill_abi::RILL_PLUGIN_MAGIC
            ),
            LoadError::AbiMajor {
                path,
                found,
                expected,
            } => write!(
                f,
                "plugin {}: built for Rill ABI {found}.x, this host speaks ABI {expected}.x: \
                 rebuild the plugin against this host's rill.h / rill-abi",
                path.display()
            ),
            LoadError::TooSmall {
                path,
                struct_size,
                min,
            } => write!(
                f,
                "plugin {}: descriptor struct_size {struct_size} is smaller than ABI 1.0's {min} \
                 bytes (corrupt or not built from rill.h)",
                path.display()
            ),
            LoadError::BadName { path, name } => write!(
                f,
                "plugin {}: invalid plugin name {name:?}: it must be 1 to {MAX_NAME_LEN} \
                 characters of [a-z0-9_-]",
                path.display()
            ),
            LoadError::BadText { path } => write!(
                f,
                "plugin {}: its version or description is not valid UTF-8",
                path.display()
            ),
            LoadError::MissingCallback { path, callback } => write!(
                f,
                "plugin {}: required callback `{callback}` is NULL",
                path.display()
            ),
            LoadError::Layout { path, message, .. } => write!(
                f,
                "plugin {}: its ABI layout differs from this host's (rebuild it against the \
                 same rill-abi): {message}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`: the identity of a plugin file's
/// content (64 hex digits).
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex_digest(&Sha256::digest(bytes))
}

/// A digest as lower-case hex.
pub fn hex_digest(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Loads the plugin file `source` as generation `generation`, through a
/// private byte copy in `private_dir` (created with mode 0700 if missing).
///
/// Blocking. On success the library stays loaded for the life of the
/// process; nothing has been called but the entry point (and the library's
/// static initialisers): `create` is the caller's. Either way the private
/// copy's file is removed once opened: the mapping outlives it (the kernel
/// keeps the inode while mapped), and no reload leaves a file behind.
pub fn load(
    source: &Path,
    private_dir: &Path,
    generation: u64,
) -> Result<LoadedLibrary, LoadError> {
    let loaded = load_from_bytes(source, private_dir, generation);
    release_freed_memory();
    loaded
}

/// Gives the allocator's free memory back to the system. A load reads the
/// whole library (megabytes) into one buffer; once it is freed, glibc keeps
/// such a block in the arena of the thread that read it (its trim threshold
/// grows with the largest block freed), and reloads on different threads
/// left tens of MiB resident for nothing (scripts/soak showed ~75 MiB after
/// a few dozen reloads).
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn load_from_bytes(
    source: &Path,
    private_dir: &Path,
    generation: u64,
) -> Result<LoadedLibrary, LoadError> {
    let bytes = read_plugin_file(source)?;
    super::elf::check_object_file(&bytes).map_err(|reason| LoadError::NotALibrary {
        path: source.to_path_buf(),
        reason,
    })?;
    let hash = hash_bytes(&bytes);
    prepare_private_dir(private_dir, source)?;
    let private_copy = write_private_copy(source, private_dir, generation, &hash, &bytes)?;
    let opened = open_and_validate(source, &private_copy);
    // Mapped or refused, the copy's bytes are no longer needed; its name
    // stays claimed (EVER_OPENED), so it is never used again.
    let _ = fs::remove_file(&private_copy);
    match opened {
        Ok((descriptor, descriptor_addr, layout_checked)) => {
            // SAFETY: rill_read_descriptor checked that the strings are valid
            // UTF-8 views; they live in the library, which is never unloaded.
            let (name, version, description) = unsafe {
                (
                    descriptor.name.to_str().unwrap_or_default().to_owned(),
                    descriptor.version.to_str().unwrap_or_default().to_owned(),
                    descriptor
                        .description
                        .to_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            };
            Ok(LoadedLibrary {
                name,
                version,
                description,
                abi_major: descriptor.abi_major,
                abi_minor: descriptor.abi_minor,
                flags: descriptor.flags,
                descriptor,
                descriptor_addr,
                source: source.to_path_buf(),
                private_copy,
                hash,
                size: bytes.len() as u64,
                generation,
                loaded_at: SystemTime::now(),
                layout_checked,
            })
        }
        Err(e) => Err(e),
    }
}

/// Removes the private copies in `private_dir` that this process did not
/// open: leftovers of a run that died between writing a copy and
/// removing it (a loaded copy's file is removed at once). Only names of the form `<stem>.<generation>.<hash8>[-n].<ext>`
/// are touched; a missing directory has nothing to remove. Returns how many
/// files were removed.
pub fn remove_stale_copies(private_dir: &Path) -> io::Result<usize> {
    let opened = lock_opened().clone();
    let mut removed = 0;
    let entries = match fs::read_dir(private_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !is_private_copy_name(name) || opened.contains(&path) || !entry.file_type()?.is_file() {
            continue;
        }
        fs::remove_file(&path)?;
        removed += 1;
    }
    Ok(removed)
}

fn lock_opened() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    // A poisoned set is still a correct set: insertions are single calls.
    EVER_OPENED.lock().unwrap_or_else(|e| e.into_inner())
}

/// `<stem>.<digits>.<8 hex>[-<digits>].<ext>`
fn is_private_copy_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_suffix(DYLIB_EXTENSION)
        .and_then(|r| r.strip_suffix('.'))
    else {
        return false;
    };
    let mut parts = rest.rsplitn(3, '.');
    let (Some(hash_part), Some(generation), Some(stem)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (hash8, dedup) = match hash_part.split_once('-') {
        Some((h, n)) => (h, Some(n)),
        None => (hash_part, None),
    };
    !stem.is_empty()
        && !generation.is_empty()
        && generation.bytes().all(|b| b.is_ascii_digit())
        && hash8.len() == 8
        && hash8.bytes().all(|b| b.is_ascii_hexdigit())
        && dedup.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_plugin_file(source: &Path) -> Result<Vec<u8>, LoadError> {
    let io_err = |source_err| LoadError::Io {
        path: source.to_path_buf(),
        action: "cannot read plugin file",
        source: source_err,
    };
    let meta = fs::metadata(source).map_err(io_err)?;
    if !meta.is_file() {
        return Err(LoadError::NotALibrary {
            path: source.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    check_trusted(source, &meta)?;
    if meta.len() > MAX_PLUGIN_FILE_SIZE {
        return Err(LoadError::NotALibrary {
            path: source.to_path_buf(),
            reason: format!(
                "the file is {} bytes, more than the {} bytes a plugin may have",
                meta.len(),
                MAX_PLUGIN_FILE_SIZE
            ),
        });
    }
    fs::read(source).map_err(io_err)
}

/// Refuses a plugin file that someone other than root or the server's
/// own user could have written: writable by others, or owned by another
/// user. `meta` is the file's (a symlink's target's) metadata; the
/// symlink itself is checked too, so a link planted by another user is
/// refused even when it points at a good file.
#[cfg(unix)]
fn check_trusted(source: &Path, meta: &fs::Metadata) -> Result<(), LoadError> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |reason: String| {
        Err(LoadError::Untrusted {
            path: source.to_path_buf(),
            reason,
        })
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let owner_ok = |uid: u32| uid == 0 || uid == me;
    if meta.mode() & 0o002 != 0 {
        return refuse(format!(
            "the file is writable by others (mode {:o}; chmod o-w it)",
            meta.mode() & 0o7777
        ));
    }
    if !owner_ok(meta.uid()) {
        return refuse(format!(
            "the file is owned by uid {}, not by root or the server's user (uid {me})",
            meta.uid()
        ));
    }
    if let Ok(link) = fs::symlink_metadata(source) {
        if link.file_type().is_symlink() && !owner_ok(link.uid()) {
            return refuse(format!(
                "the symlink is owned by uid {}, not by root or the server's user (uid {me})",
                link.uid()
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted(_source: &Path, _meta: &fs::Metadata) -> Result<(), LoadError> {
    Ok(())
}

/// Creates the private directory (mode 0700) or checks an existing one: it
/// must be a directory nobody else can write to (or they could swap the
/// code between our write and our `dlopen`), and not the plugins directory
/// itself (the copies would be picked up as new plugins).
fn prepare_private_dir(private_dir: &Path, source: &Path) -> Result<(), LoadError> {
    let io_err = |action, e| LoadError::Io {
        path: private_dir.to_path_buf(),
        action,
        source: e,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(private_dir)
        .map_err(|e| io_err("cannot create the plugins' private directory", e))?;
    let meta = fs::metadata(private_dir)
        .map_err(|e| io_err("cannot inspect the plugins' private directory", e))?;
    if !meta.is_dir() {
        return Err(io_err(
            "the plugins' private directory is not a directory",
            io::Error::from(io::ErrorKind::NotADirectory),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(io_err(
                "the plugins' private directory is writable by group or others (chmod 700 it)",
                io::Error::from(io::ErrorKind::PermissionDenied),
            ));
        }
    }
    let source_dir = match source.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("."),
    };
    if let (Ok(a), Ok(b)) = (fs::canonicalize(source_dir), fs::canonicalize(private_dir)) {
        if a == b {
            return Err(io_err(
                "the plugins' private directory must not be the plugins directory",
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to a new file `<stem>.<generation>.<hash8>[-n].<ext>` in
/// `private_dir` that did not exist and was never opened by this process.
fn write_private_copy(
    source: &Path,
    private_dir: &Path,
    generation: u64,
    hash: &str,
    bytes: &[u8],
) -> Result<PathBuf, LoadError> {
    let stem: String = source
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let stem = if stem.is_empty() {
        "plugin".to_string()
    } else {
        stem
    };
    let ext = source
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or(DYLIB_EXTENSION);
    let hash8 = &hash[..8.min(hash.len())];
    let mut last_err = None;
    for n in 0..1000u32 {
        let file_name = if n == 0 {
            format!("{stem}.{generation}.{hash8}.{ext}")
        } else {
            format!("{stem}.{generation}.{hash8}-{n}.{ext}")
        };
        let path = private_dir.join(file_name);
        // Claim the name before creating the file, so neither a concurrent
        // load nor `remove_stale_copies` can take it or remove it; a claimed
        // name is never used again, whatever happens next.
        if !lock_opened().insert(path.clone()) {
            continue;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(bytes).and_then(|()| f.flush()) {
                    drop(f);
                    let _ = fs::remove_file(&path);
                    return Err(LoadError::Io {
                        path,
                        action: "cannot write the plugin's private copy",
                        source: e,
                    });
                }
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => {
                return Err(LoadError::Io {
                    path,
                    action: "cannot create the plugin's private copy",
                    source: e,
                })
            }
        }
    }
    Err(LoadError::Io {
        path: private_dir.to_path_buf(),
        action: "no free name for the plugin's private copy",
        source: last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    })
}

/// Opens the private copy (never closed), calls the entry point, validates
/// the descriptor and runs the deep layout check when it applies. Returns
/// the descriptor copy, the address the entry returned and whether the
/// layout check ran.
fn open_and_validate(
    source: &Path,
    private_copy: &Path,
) -> Result<(RillPluginDescriptor, usize, bool), LoadError> {
    let path = || source.to_path_buf();
    debug_assert!(lock_opened().contains(private_copy));

    let library = open_library(private_copy).map_err(|e| LoadError::NotALibrary {
        path: path(),
        reason: e.to_string(),
    })?;
    // Never unloaded: dlclose is unsound for Rust cdylibs (DESIGN.md). The
    // leaked handle keeps the library mapped for the life of the process, so
    // everything below may keep pointers into it.
    let library: &'static Library = Box::leak(Box::new(library));

    // SAFETY: `Option<RillPluginEntryV1>` is a nullable fn pointer, the same
    // size as the symbol's address; the symbol's real type is fixed by the
    // ABI (a plugin exporting something else under this name is broken in a
    // way no loader can detect; magic and struct_size checks below catch
    // most of it). A genuine NULL symbol reads as None.
    let entry: Option<RillPluginEntryV1> =
        match unsafe { library.get::<Option<RillPluginEntryV1>>(ENTRY_SYMBOL) } {
            Ok(sym) => *sym,
            Err(e) => {
                return Err(LoadError::NoEntry {
                    path: path(),
                    reason: e.to_string(),
                })
            }
        };
    let Some(entry) = entry else {
        return Err(LoadError::NoEntry {
            path: path(),
            reason: "the symbol's address is NULL".into(),
        });
    };

    // SAFETY: `entry` is the plugin's `rill_plugin_entry_v1`, which the ABI
    // lets the host call once per load on any thread, before anything else,
    // with its ABI version. Its code stays mapped (never unloaded).
    let raw = unsafe { entry(u32::from(RILL_ABI_MAJOR), u32::from(RILL_ABI_MINOR)) };

    // SAFETY: `raw` is NULL or what the entry point returned: a static
    // descriptor of at least its `struct_size` bytes, with static strings,
    // in a library that is never unloaded (rill_read_descriptor's contract).
    let descriptor = match unsafe { rill_read_descriptor(raw) } {
        Ok(d) => d,
        Err(e) => return Err(descriptor_error(source, raw, e)),
    };
    // SAFETY: validated UTF-8 view of static bytes in the library.
    let name = unsafe { descriptor.name.to_str() }.unwrap_or_default();
    if name.len() > MAX_NAME_LEN {
        return Err(LoadError::BadName {
            path: path(),
            name: shorten(name.as_bytes()),
        });
    }

    let layout_checked = if descriptor.abi_minor == RILL_ABI_MINOR {
        deep_layout_check(private_copy).map_err(|report| LoadError::Layout {
            path: path(),
            message: summarize_layout_report(&report),
            report,
        })?
    } else {
        // abi_stable demands identical layouts; another minor differs by
        // design (appended fields), which struct_size already handles.
        false
    };
    Ok((descriptor, raw as usize, layout_checked))
}

#[cfg(unix)]
type Library = libloading::os::unix::Library;
#[cfg(not(unix))]
type Library = libloading::Library;

#[cfg(unix)]
fn open_library(path: &Path) -> Result<Library, libloading::Error> {
    use libloading::os::unix::{RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its static initialisers; that is the
    // point of a plugin, which the operator installed. The file is a private
    // copy in a directory only this user can write, already checked to be a
    // complete ELF file (no SIGBUS on a truncated one). RTLD_NOW resolves
    // every symbol now, so a missing dependency fails here and not at a
    // later call; RTLD_LOCAL keeps the plugin's symbols out of the global
    // namespace (two generations export the same names).
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> Result<Library, libloading::Error> {
    // SAFETY: as for the unix version: the operator's plugin, from a private
    // copy; Windows resolves imports at load.
    unsafe { Library::new(path) }
}

/// abi_stable's deep layout check of a Rust plugin (root module exported
/// by `export_plugin!` with `abi-check`): `Ok(true)` checked and equal,
/// `Ok(false)` no root module (C plugin), `Err` the mismatch report.
fn deep_layout_check(private_copy: &Path) -> Result<bool, String> {
    // check_layout opens the same path again (dlopen returns the handle we
    // already hold) and leaks it: nothing is unloaded. Guard against a panic
    // inside abi_stable or the plugin's root-module constructor: a bad file
    // must be an error, not a crashed loader thread.
    match std::panic::catch_unwind(|| rill_abi::stable::check_layout(private_copy)) {
        Ok(Ok(Some(_root))) => Ok(true),
        Ok(Ok(None)) => Ok(false),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the abi_stable layout check panicked".into()),
    }
}

/// Maps the ABI crate's refusal to a LoadError naming the file.
fn descriptor_error(
    source: &Path,
    raw: *const RillPluginDescriptor,
    e: DescriptorError,
) -> LoadError {
    let path = source.to_path_buf();
    match e {
        DescriptorError::Null => LoadError::EntryRefused { path },
        DescriptorError::BadMagic(found) => LoadError::BadMagic { path, found },
        DescriptorError::AbiMajor(found) => LoadError::AbiMajor {
            path,
            found,
            expected: RILL_ABI_MAJOR,
        },
        DescriptorError::TooSmall(struct_size) => LoadError::TooSmall {
            path,
            struct_size,
            min: rill_v1_0_size_of_descriptor(),
        },
        DescriptorError::MissingCallback(callback) => LoadError::MissingCallback { path, callback },
        DescriptorError::BadText => LoadError::BadText { path },
        DescriptorError::BadName => {
            // SAFETY: BadName is only returned after magic, major and
            // struct_size >= ABI 1.0's size were checked, so `raw` points to
            // at least a 1.0 descriptor and `name` lies within it (read
            // unaligned, by value: no reference to plugin memory is formed).
            // Its bytes are the plugin's static string (the same read
            // rill_read_descriptor just did); at most 64 are shown.
            let name = unsafe {
                let s = core::ptr::addr_of!((*raw).name).read_unaligned();
                let shown = rill_abi::RillStr {
                    ptr: s.ptr,
                    len: s.len.min(MAX_NAME_LEN),
                };
                shorten(shown.as_bytes())
            };
            LoadError::BadName { path, name }
        }
    }
}

/// The gist of abi_stable's layout report: its `Error:` entries (with the
/// expected and found types) and the field path to the last difference.
/// Falls back to the report's start when its shape is not recognised.
fn summarize_layout_report(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(what) = lines[i].strip_prefix("Error:") else {
            i += 1;
            continue;
        };
        let (mut expected, mut found) = (Vec::new(), Vec::new());
        let mut section = 0;
        i += 1;
        while i < lines.len() && !lines[i].starts_with("Error:") {
            match lines[i] {
                "Expected:" => section = 1,
                "Found:" => section = 2,
                "" if section == 2 && !found.is_empty() => break,
                "" => {}
                l if section == 1 => expected.push(l),
                l if section == 2 => found.push(l),
                _ => {}
            }
            i += 1;
        }
        errors.push(format!(
            "{}: expected {}, found {}",
            what.trim(),
            expected.join(" "),
            found.join(" ")
        ));
    }
    let mut at = Vec::new();
    for (k, l) in lines.iter().enumerate() {
        let count = l
            .strip_suffix("error(s)inside:")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if count == 0 {
            continue;
        }
        at = lines[k + 1..]
            .iter()
            .take_while(|l| !l.starts_with("Layout of expected type:"))
            .filter_map(|l| l.strip_prefix("field_name:"))
            .collect();
    }
    if errors.is_empty() {
        let flat = report.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cut = flat.len().min(500);
        while !flat.is_char_boundary(cut) {
            cut -= 1;
        }
        return flat[..cut].to_string();
    }
    let extra = errors.len().saturating_sub(3);
    errors.truncate(3);
    let mut s = errors.join("; ");
    if extra > 0 {
        s.push_str(&format!(" (and {extra} more)"));
    }
    if !at.is_empty() {
        s.push_str(&format!(" (at {})", at.join(".")));
    }
    s
}

fn shorten(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(MAX_NAME_LEN)];
    let mut s = String::from_utf8_lossy(shown).into_owned();
    if bytes.len() > MAX_NAME_LEN {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash_bytes(b"").len(), 64);
    }

    /// The shape of abi_stable 0.11's report (cut down from a real one:
    /// a plugin whose descriptor had `flags: i32`).
    #[test]
    fn layout_report_summary() {
        let report = "\nCompared <this>:\n    --- Type Layout ---\n    type:PrefixRef<'a, RillRootModule>\n\n\
            0 error(s).\n\n0 error(s)inside:\n    <other>\n\n    field_name:0\n\n\
            Layout of expected type:\n    x\n\n\
            1 error(s)inside:\n    <other>\n\n    field_name:0\n    type:RillRootModule\n\n\
            field_name:entry\n    type:AFunctionPointer\n\n    field_name:__returns\n\n\
            field_name:0\n    type:RillPluginDescriptor\n\n    field_name:flags\n    type:i32\n\n\
            Layout of expected type:\n    --- Type Layout ---\n    type:u32\n\n\
            Layout of found type:\n    --- Type Layout ---\n    type:i32\n\n\n\n\
            Error:mismatched type\nExpected:\n    u32\nFound:\n    i32\n\n\n";
        assert_eq!(
            summarize_layout_report(report),
            "mismatched type: expected u32, found i32 (at 0.entry.__returns.0.flags)"
        );
        assert_eq!(
            summarize_layout_report("  something\n  else  "),
            "something else"
        );
        let long = "é".repeat(400);
        assert!(summarize_layout_report(&long).len() <= 500);
    }

    #[test]
    fn private_copy_names() {
        let ext = DYLIB_EXTENSION;
        assert!(is_private_copy_name(&format!("librtmp.3.deadbeef.{ext}")));
        assert!(is_private_copy_name(&format!("a.b.0.0123abcd-2.{ext}")));
        assert!(!is_private_copy_name(&format!("librtmp.{ext}")));
        assert!(!is_private_copy_name(&format!("librtmp.x.deadbeef.{ext}")));
        assert!(!is_private_copy_name(&format!("librtmp.3.deadbee.{ext}")));
        assert!(!is_private_copy_name(&format!("librtmp.3.deadbeef-.{ext}")));
        assert!(!is_private_copy_name("librtmp.3.deadbeef.txt"));
        assert!(!is_private_copy_name(&format!(".3.deadbeef.{ext}")));
    }
}
