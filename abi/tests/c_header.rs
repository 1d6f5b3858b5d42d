//! Compiles `include/rill.h` as C11 and as C++17 with every warning as an
//! error, together with static assertions that C's layout of each ABI type
//! matches Rust's. Skips (saying so) only when no compiler is installed.

use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use rill_abi::*;

fn include_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include")
}

fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|c| c.to_string())
}

/// `(C expression, Rust value)` pairs that must agree.
fn layout_facts() -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = Vec::new();
    macro_rules! size {
        ($($t:ident),*) => {$(
            v.push((format!("sizeof({})", stringify!($t)), size_of::<$t>()));
        )*};
    }
    macro_rules! off {
        ($t:ident: $($f:ident),*) => {$(
            v.push((
                format!("offsetof({}, {})", stringify!($t), stringify!($f)),
                offset_of!($t, $f),
            ));
        )*};
    }
    size!(
        RillStr,
        RillBytes,
        RillHeader,
        RillFrameInfo,
        RillTrackInfo,
        RillSubscribeOptions,
        RillSubscriberStats,
        RillHttpRequest,
        RillHostApi,
        RillPluginDescriptor
    );
    off!(RillStr: ptr, len);
    off!(RillFrameInfo: struct_size, track, codec, flags, pts, dts);
    off!(RillTrackInfo: kind, codec, width, height, sample_rate, channels);
    off!(RillSubscribeOptions: flags, wait_timeout_us);
    off!(RillSubscriberStats: frames_delivered, frames_queued);
    off!(RillHttpRequest: flags, method, path, query, headers, header_count, body);
    off!(RillHostApi: struct_size, abi_major, abi_minor, log, frame_alloc, frame_cache_set,
        publish_open, subscribe_open, listen, conn_write, http_route, udp_bind, timer_start, post);
    off!(RillPluginDescriptor: magic, struct_size, abi_major, abi_minor, flags, name, version,
        description, create, drain, destroy, on_conn_open, on_http_request, on_frame, on_timer,
        on_post, on_stream_event, on_udp_data);
    v
}

fn check_source() -> String {
    let mut s = String::from(
        r#"#include "rill.h"
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#define CHECK(e, msg) static_assert(e, msg)
#else
#define CHECK(e, msg) _Static_assert(e, msg)
#endif

"#,
    );
    for (expr, val) in layout_facts() {
        s += &format!("CHECK({expr} == {val}u, \"{expr} differs from Rust ({val})\");\n");
    }
    s += &format!(
        "CHECK(RILL_CODEC_H264 == {}u, \"fourcc\");\nCHECK(RILL_PLUGIN_MAGIC == {}u, \"magic\");\n",
        RILL_CODEC_H264, RILL_PLUGIN_MAGIC
    );
    s += r#"
static int32_t create_cb(const RillHostApi *api, RillHost *host, void **instance) {
    if (!RILL_HAS_FN(RillHostApi, api, post)) return RILL_ERR_UNSUPPORTED;
    RillStr s = RILL_STR("hello");
    api->log(host, RILL_LOG_INFO, s);
    printf(RILL_STR_FMT "\n", RILL_STR_ARG(s));
    *instance = NULL;
    (void)rill_status_str(RILL_ERR_BUSY);
    return RILL_OK;
}

static void destroy_cb(void *instance) { (void)instance; }

static int32_t on_frame_cb(void *instance, void *su, RillSubscriber *sub, const RillFrame *frame) {
    (void)instance; (void)su; (void)sub; (void)frame;
    return RILL_OK;
}

static RillPluginDescriptor DESC;

RILL_EXPORT const RillPluginDescriptor *rill_plugin_entry_v1(uint32_t host_major, uint32_t host_minor) {
    (void)host_minor;
    if (host_major != RILL_ABI_MAJOR) return NULL;
    memset(&DESC, 0, sizeof DESC);
    DESC.magic = RILL_PLUGIN_MAGIC;
    DESC.struct_size = sizeof DESC;
    DESC.abi_major = RILL_ABI_MAJOR;
    DESC.abi_minor = RILL_ABI_MINOR;
    DESC.name = RILL_STR("check");
    DESC.version = RILL_STRN("1.0", 3);
    DESC.create = create_cb;
    DESC.destroy = destroy_cb;
    DESC.on_frame = on_frame_cb;
    return &DESC;
}
"#;
    s
}

fn compile(compiler: &str, args: &[&str], src: &Path) {
    let out = Command::new(compiler)
        .args(args)
        .arg("-I")
        .arg(include_dir())
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {} failed on include/rill.h:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_source(lang: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-abi-{lang}-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("check.c");
    std::fs::write(&src, check_source()).unwrap();
    src
}

const WARN: &[&str] = &["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"];

#[test]
fn header_compiles_as_c11() {
    let cc = std::env::var("CC").unwrap_or_default();
    let Some(cc) = find(&[&cc, "cc", "gcc", "clang"]) else {
        let why = Some("none of cc, gcc, clang found".to_owned());
        rill_testsupport::require_tool("header_compiles_as_c11", "a C compiler", why);
        return;
    };
    let src = write_source("c");
    let mut args = vec!["-std=c11"];
    args.extend_from_slice(WARN);
    compile(&cc, &args, &src);
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}

#[test]
fn header_compiles_as_cpp17() {
    let cxx = std::env::var("CXX").unwrap_or_default();
    let Some(cxx) = find(&[&cxx, "c++", "g++", "clang++"]) else {
        let why = Some("none of c++, g++, clang++ found".to_owned());
        rill_testsupport::require_tool("header_compiles_as_cpp17", "a C++ compiler", why);
        return;
    };
    let src = write_source("cpp");
    let mut args = vec!["-std=c++17", "-x", "c++"];
    args.extend_from_slice(WARN);
    compile(&cxx, &args, &src);
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}
