//! Loading plugin files (`rill::plugin::library`): tiny C plugins are built
//! at test time with the system C compiler (`cc -shared -fPIC`) from the
//! sources below, against the repository's `include/rill.h`, and loaded
//! through the host's loader: a valid one, and one for each way a file can
//! be refused. Every test skips with a message when `cc` is missing.

use std::ffi::c_void;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;

use rill::plugin::library::{self, LoadError, LoadedLibrary};
use rill::plugin::watch::file_hash;
use rill_abi::{RILL_ABI_MAJOR, RILL_ABI_MINOR};

/// Knobs of the generated C plugin.
struct Src<'a> {
    name: &'a str,
    version: &'a str,
    /// Value `create` stores in `*instance` (tells generations apart).
    tag: u32,
    magic: &'a str,
    major: &'a str,
    struct_size: &'a str,
    destroy: bool,
    entry_returns_null: bool,
    entry_name: &'a str,
}

impl Default for Src<'_> {
    fn default() -> Self {
        Src {
            name: "tiny",
            version: "1.0.0",
            tag: 1,
            magic: "RILL_PLUGIN_MAGIC",
            major: "RILL_ABI_MAJOR",
            struct_size: "sizeof(RillPluginDescriptor)",
            destroy: true,
            entry_returns_null: false,
            entry_name: "rill_plugin_entry_v1",
        }
    }
}

impl Src<'_> {
    fn render(&self) -> String {
        let Src {
            name,
            version,
            tag,
            magic,
            major,
            struct_size,
            destroy,
            entry_returns_null,
            entry_name,
        } = self;
        let destroy = if *destroy { "tiny_destroy" } else { "NULL" };
        let ret = if *entry_returns_null {
            "NULL"
        } else {
            "&DESCRIPTOR"
        };
        format!(
            r#"
#include "rill.h"
#include <stddef.h>
#include <stdint.h>

static int32_t tiny_create(const RillHostApi *api, RillHost *host, void **instance) {{
    (void)api;
    (void)host;
    *instance = (void *)(uintptr_t){tag}u;
    return RILL_OK;
}}

static void tiny_destroy(void *instance) {{ (void)instance; }}

static const RillPluginDescriptor DESCRIPTOR = {{
    .magic = {magic},
    .struct_size = {struct_size},
    .abi_major = {major},
    .abi_minor = RILL_ABI_MINOR,
    .flags = 0,
    .name = RILL_STR_INIT("{name}"),
    .version = RILL_STR_INIT("{version}"),
    .description = RILL_STR_INIT("a tiny test plugin"),
    .create = tiny_create,
    .destroy = {destroy},
}};

RILL_EXPORT const RillPluginDescriptor *{entry_name}(uint32_t host_major, uint32_t host_minor) {{
    (void)host_major;
    (void)host_minor;
    (void)tiny_destroy;
    (void)&DESCRIPTOR;
    return {ret};
}}
"#
        )
    }
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../include")
}

fn have_cc() -> bool {
    let missing = (!rill_testsupport::runs("cc", &["--version"]))
        .then(|| "no `cc` on PATH; these tests build C plugins with it".to_owned());
    rill_testsupport::require_tool("plugin_library", "a C compiler", missing)
}

macro_rules! require_cc {
    () => {
        if !have_cc() {
            return;
        }
    };
}

/// A test's directories: `plugins/` (what an operator installs) and
/// `private/` (the loader's copies).
struct Dirs {
    _tmp: tempfile::TempDir,
    plugins: PathBuf,
    private: PathBuf,
    build: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins = tmp.path().join("plugins");
    let build = tmp.path().join("build");
    fs::create_dir(&plugins).unwrap();
    fs::create_dir(&build).unwrap();
    Dirs {
        private: tmp.path().join("private"),
        plugins,
        build,
        _tmp: tmp,
    }
}

/// Compiles `src` into `out` (a shared library).
fn build(d: &Dirs, src: &Src<'_>, out: &Path) {
    let c = d
        .build
        .join(format!("{}.c", out.file_stem().unwrap().to_string_lossy()));
    fs::write(&c, src.render()).unwrap();
    let status = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror",
        ])
        .arg("-I")
        .arg(include_dir())
        .arg("-o")
        .arg(out)
        .arg(&c)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {}", c.display());
}

fn plugin_path(d: &Dirs, stem: &str) -> PathBuf {
    d.plugins
        .join(format!("{stem}.{}", library::DYLIB_EXTENSION))
}

/// Files now in the private directory.
fn private_files(d: &Dirs) -> Vec<PathBuf> {
    match fs::read_dir(&d.private) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Calls `create` then `destroy` through the descriptor; returns the
/// instance pointer `create` stored (the C plugin's `tag`).
fn create_destroy(lib: &LoadedLibrary) -> usize {
    let create = lib.descriptor.create.expect("create");
    let destroy = lib.descriptor.destroy.expect("destroy");
    let mut instance: *mut c_void = ptr::null_mut();
    // SAFETY: the test plugin's create ignores api and host and writes the
    // instance pointer; destroy ignores it. The library is never unloaded.
    unsafe {
        assert_eq!(
            create(ptr::null(), ptr::null_mut(), &mut instance),
            rill_abi::RILL_OK
        );
        destroy(instance);
    }
    instance as usize
}

/// Loads a plugin that must be refused; checks the private copy is gone.
fn refused(d: &Dirs, path: &Path) -> LoadError {
    let err = library::load(path, &d.private, 1).expect_err("must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message must name the file: {msg}"
    );
    assert_eq!(err.path(), path);
    assert!(
        private_files(d).is_empty(),
        "private copy left behind: {:?}",
        private_files(d)
    );
    err
}

#[test]
fn valid_minimal_plugin_loads() {
    require_cc!();
    let d = dirs();
    let src = plugin_path(&d, "libtiny");
    build(&d, &Src::default(), &src);
    let lib = library::load(&src, &d.private, 7).expect("load");
    assert_eq!(lib.name, "tiny");
    assert_eq!(lib.version, "1.0.0");
    assert_eq!(lib.description, "a tiny test plugin");
    assert_eq!(
        (lib.abi_major, lib.abi_minor),
        (RILL_ABI_MAJOR, RILL_ABI_MINOR)
    );
    assert_eq!(lib.flags, 0);
    assert_eq!(lib.generation, 7);
    assert!(
        !lib.layout_checked,
        "a C plugin has no abi_stable root module"
    );
    assert_eq!(lib.source, src);
    assert_eq!(lib.hash, file_hash(&src).unwrap());
    assert_eq!(lib.hash.len(), 64);
    assert_eq!(lib.size, fs::metadata(&src).unwrap().len());
    assert_ne!(lib.descriptor_addr, 0);
    assert!(lib.descriptor.drain.is_none());
    assert!(lib.descriptor.on_udp_data.is_none());

    // The private copy: at a generation- and hash-named path in a 0700
    // directory, mapped, and its file already removed.
    let copy_name = lib.private_copy.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        copy_name,
        format!("libtiny.7.{}.{}", &lib.hash[..8], library::DYLIB_EXTENSION)
    );
    assert_eq!(lib.private_copy.parent().unwrap(), d.private);
    assert!(!lib.private_copy.exists(), "the private copy's file stays");
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains(&format!("{} (deleted)", lib.private_copy.display())),
        "the copy is not mapped"
    );
    let mode = fs::metadata(&d.private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "private dir mode {mode:o}");

    assert_eq!(create_destroy(&lib), 1);
    assert!(format!("{lib:?}").contains("tiny"));
}

#[test]
fn entry_returning_null_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "null");
    build(
        &d,
        &Src {
            entry_returns_null: true,
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(matches!(err, LoadError::EntryRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("returned NULL"), "{err}");
    assert_eq!(err.kind(), "entry_refused");
}

#[test]
fn wrong_magic_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "magic");
    build(
        &d,
        &Src {
            magic: "0x12345678u",
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(
        matches!(
            err,
            LoadError::BadMagic {
                found: 0x1234_5678,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("magic 0x12345678"), "{err}");
}

#[test]
fn other_abi_major_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "major2");
    build(
        &d,
        &Src {
            major: "2",
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(
        matches!(
            err,
            LoadError::AbiMajor {
                found: 2,
                expected: RILL_ABI_MAJOR,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("ABI 2.x") && msg.contains("ABI 1.x"), "{msg}");
}

#[test]
fn missing_entry_symbol_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "noentry");
    build(
        &d,
        &Src {
            entry_name: "some_other_function",
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(matches!(err, LoadError::NoEntry { .. }), "{err:?}");
    assert!(err.to_string().contains("rill_plugin_entry_v1"), "{err}");
}

#[test]
fn truncated_copies_are_refused_without_crashing() {
    require_cc!();
    let d = dirs();
    let good = d.build.join(format!("good.{}", library::DYLIB_EXTENSION));
    build(&d, &Src::default(), &good);
    let bytes = fs::read(&good).unwrap();
    let p = plugin_path(&d, "truncated");
    // glibc would map most of these and die of SIGBUS at the first touch of
    // a missing page: the loader must refuse them before dlopen.
    for cut in [
        1,
        10,
        64,
        1000,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        fs::write(&p, &bytes[..cut]).unwrap();
        let err = refused(&d, &p);
        assert!(
            matches!(err, LoadError::NotALibrary { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(
            err.to_string().contains("not a loadable shared library"),
            "{err}"
        );
    }
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused(&d, &p);
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn text_file_named_like_a_library_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "readme");
    fs::write(&p, "this is not a plugin\n").unwrap();
    let err = refused(&d, &p);
    assert!(matches!(err, LoadError::NotALibrary { .. }), "{err:?}");
    let p = plugin_path(&d, "empty");
    fs::write(&p, "").unwrap();
    let err = refused(&d, &p);
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn missing_required_callback_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "nodestroy");
    build(
        &d,
        &Src {
            destroy: false,
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(
        matches!(
            err,
            LoadError::MissingCallback {
                callback: "destroy",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("`destroy`"), "{err}");
}

#[test]
fn bad_names_are_refused() {
    require_cc!();
    let d = dirs();
    let long = "a".repeat(65);
    for (stem, name) in [
        ("upper", "Tiny"),
        ("space", "ti ny"),
        ("blank", ""),
        ("long", long.as_str()),
    ] {
        let p = plugin_path(&d, stem);
        build(
            &d,
            &Src {
                name,
                ..Src::default()
            },
            &p,
        );
        let err = refused(&d, &p);
        assert!(
            matches!(err, LoadError::BadName { .. }),
            "{name:?}: {err:?}"
        );
        assert!(err.to_string().contains("invalid plugin name"), "{err}");
    }
    // 64 is the limit, inclusive.
    let p = plugin_path(&d, "sixtyfour");
    let name = "b".repeat(64);
    build(
        &d,
        &Src {
            name: &name,
            ..Src::default()
        },
        &p,
    );
    assert_eq!(library::load(&p, &d.private, 1).unwrap().name, name);
}

#[test]
fn too_small_descriptor_is_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "small");
    build(
        &d,
        &Src {
            struct_size: "40",
            ..Src::default()
        },
        &p,
    );
    let err = refused(&d, &p);
    assert!(
        matches!(err, LoadError::TooSmall { struct_size: 40, min, .. } if min == rill_abi::rill_v1_0_size_of_descriptor()),
        "{err:?}"
    );
}

#[test]
fn missing_file_is_an_io_error() {
    let d = dirs();
    let p = plugin_path(&d, "absent");
    let err = library::load(&p, &d.private, 1).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn unsafe_private_dirs_are_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "libtiny");
    build(&d, &Src::default(), &p);
    // The plugins directory itself.
    let err = library::load(&p, &d.plugins, 1).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("must not be the plugins directory"),
        "{err}"
    );
    // A directory others can write to.
    fs::create_dir(&d.private).unwrap();
    fs::set_permissions(&d.private, fs::Permissions::from_mode(0o777)).unwrap();
    let err = library::load(&p, &d.private, 1).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    assert!(private_files(&d).is_empty());
}

/// A file someone else could have written is never loaded: writable by
/// others, owned by another user, or reached through another user's
/// symlink.
#[test]
fn untrusted_plugin_files_are_refused() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "libtiny");
    build(&d, &Src::default(), &p);
    let untrusted = |path: &Path| match library::load(path, &d.private, 1) {
        Err(e @ LoadError::Untrusted { .. }) => e.to_string(),
        other => panic!("{path:?}: {other:?}"),
    };
    fs::set_permissions(&p, fs::Permissions::from_mode(0o646)).unwrap();
    assert!(untrusted(&p).contains("writable by others"));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    library::load(&p, &d.private, 1).expect("a 0644 file of ours loads");

    // Ownership can only be given away as root (CI and the tests' usual
    // user); as anyone else the check above is what runs.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let nobody = 65534;
        std::os::unix::fs::chown(&p, Some(nobody), None).unwrap();
        assert!(untrusted(&p).contains("owned by uid 65534"));
        std::os::unix::fs::chown(&p, Some(0), None).unwrap();
        let link = plugin_path(&d, "liblinked");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(nobody), None).unwrap();
        assert!(untrusted(&link).contains("symlink is owned by uid 65534"));
    }
    assert!(private_files(&d).is_empty());
}

/// The hot-reload case: the same path rebuilt with a new version loads the
/// new code (a private copy defeats dlopen's per-path cache), and the old
/// generation's descriptor still works (never unmapped).
#[test]
fn reload_of_same_path_gets_new_code_and_old_stays_mapped() {
    require_cc!();
    let d = dirs();
    let p = plugin_path(&d, "libtiny");
    build(
        &d,
        &Src {
            version: "1.0.0",
            tag: 1,
            ..Src::default()
        },
        &p,
    );
    let old = library::load(&p, &d.private, 1).expect("load v1");
    assert_eq!(old.version, "1.0.0");

    // Rebuild in place (what `cc -o` does to an existing output), then load
    // again from the same path.
    build(
        &d,
        &Src {
            version: "2.0.0",
            tag: 2,
            ..Src::default()
        },
        &p,
    );
    let new = library::load(&p, &d.private, 2).expect("load v2");
    assert_eq!(new.version, "2.0.0");
    assert_ne!(new.hash, old.hash);
    assert_ne!(new.private_copy, old.private_copy);
    assert_ne!(new.descriptor_addr, old.descriptor_addr);
    assert_eq!(create_destroy(&new), 2);

    // The old generation: its strings and code are still mapped.
    // SAFETY: static strings of a library that is never unloaded.
    assert_eq!(unsafe { old.descriptor.version.to_str() }, Some("1.0.0"));
    assert_eq!(create_destroy(&old), 1);
    // Their private copies' files are gone (the mappings stay).
    assert!(!old.private_copy.exists() && !new.private_copy.exists());
    assert!(private_files(&d).is_empty());

    // Loading identical bytes again with the same generation still opens a
    // fresh path, never one already opened.
    let again = library::load(&p, &d.private, 2).expect("load v2 again");
    assert_ne!(again.private_copy, new.private_copy);
    assert_eq!(again.hash, new.hash);
    assert_eq!(again.version, "2.0.0");

    // Stale-copy cleanup spares what this process loaded.
    let stale = d
        .private
        .join(format!("libtiny.9.0123abcd.{}", library::DYLIB_EXTENSION));
    fs::write(&stale, b"old run").unwrap();
    fs::write(d.private.join("notes.txt"), b"keep").unwrap();
    assert_eq!(library::remove_stale_copies(&d.private).unwrap(), 1);
    assert!(!stale.exists());
    assert!(d.private.join("notes.txt").exists());
    assert_eq!(
        library::remove_stale_copies(&d.build.join("absent")).unwrap(),
        0
    );
}

/// A Rust plugin built through the SDK with `abi-check` exports an
/// abi_stable root module, and the loader runs the deep layout check on it.
/// Uses rill-abi's example cdylib when this `cargo test` run built it
/// (`cargo test --workspace` does, with `abi-check` unified in by the host);
/// otherwise says it skipped.
#[test]
fn rust_sdk_plugin_gets_the_deep_layout_check() {
    let exe = std::env::current_exe().unwrap();
    let Some(examples) = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("examples"))
    else {
        return;
    };
    let name = format!(
        "{}echo_plugin.{}",
        std::env::consts::DLL_PREFIX,
        library::DYLIB_EXTENSION
    );
    let built = examples.join(name);
    if !built.exists() {
        eprintln!(
            "SKIPPED rust_sdk_plugin_gets_the_deep_layout_check: {} was not built \
             (run `cargo test --workspace`, which builds rill-abi's examples)",
            built.display()
        );
        return;
    }
    let d = dirs();
    let p = plugin_path(&d, "libecho");
    fs::copy(&built, &p).unwrap();
    let bytes = fs::read(&p).unwrap();
    let exports_root = bytes
        .windows(rill_abi_root_loader().len())
        .any(|w| w == rill_abi_root_loader());
    let lib = library::load(&p, &d.private, 1).expect("load the SDK example");
    assert_eq!(lib.name, "echo");
    assert_eq!(
        lib.layout_checked, exports_root,
        "layout check must run exactly when the root module is exported"
    );
    if !exports_root {
        eprintln!("note: the example was built without `abi-check`; only the C checks ran");
    }
}

fn rill_abi_root_loader() -> &'static [u8] {
    b"_1as_0lib_1header_0root_bmodule_bloader"
}
