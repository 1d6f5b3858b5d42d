//! `include/rill.h` is generated from this crate by cbindgen and committed.
//! This test renders it again and fails when the committed file differs.
//!
//! Regenerate: `RILL_BLESS=1 cargo test -p rill-abi --test header`

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/rill.h")
}

fn render() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("abi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to render the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    let text = String::from_utf8(out).expect("header is UTF-8");
    // cbindgen leaves a blank line per excluded Rust-only item: squeeze runs
    // of blank lines to one.
    let mut squeezed = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        blank = if line.trim().is_empty() { blank + 1 } else { 0 };
        if blank <= 1 {
            squeezed.push_str(line);
            squeezed.push('\n');
        }
    }
    squeezed
}

#[test]
fn header_is_up_to_date() {
    let fresh = render();
    let path = header_path();
    if std::env::var_os("RILL_BLESS").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "{} is out of date with abi/src (first difference at line {}).\n\
             Regenerate it with:\n    RILL_BLESS=1 cargo test -p rill-abi --test header\n\
             and commit the result.",
            display(&path),
            first + 1
        );
    }
}

fn display(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

#[test]
fn header_has_the_essentials() {
    let h = render();
    for needle in [
        "#ifndef RILL_H",
        "#define RILL_HAS(T, s, field)",
        "#define RILL_OK 0",
        "#define RILL_ERR_PANIC -9",
        "#define RILL_CODEC_H264 ((((uint32_t)'a' | ((uint32_t)'v' << 8))",
        "#define RILL_PLUGIN_MAGIC ((((uint32_t)'R'",
        "typedef struct RillFrame RillFrame;",
        "typedef struct RillHostApi {",
        "typedef struct RillPluginDescriptor {",
        "*rill_plugin_entry_v1(uint32_t host_major,",
    ] {
        assert!(h.contains(needle), "rendered header lacks `{needle}`");
    }
    assert!(
        !h.contains("RootModule"),
        "abi_stable types leaked into the header"
    );
    // Everything the header declares is prefixed.
    for line in h.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split([' ', '(']).next().unwrap()
        } else if let Some(rest) = line.strip_prefix("typedef struct ") {
            rest.split(' ').next().unwrap()
        } else {
            continue;
        };
        assert!(
            name.starts_with("RILL_") || name.starts_with("Rill"),
            "unprefixed name `{name}` in the header: exclude it in abi/cbindgen.toml"
        );
    }
}
