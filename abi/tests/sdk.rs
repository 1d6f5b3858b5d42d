//! The Rust SDK, driven through a mock host: the example plugin
//! (examples/echo_plugin.rs) compiled into this test (in-process), and the
//! same plugin built by cargo as a cdylib and loaded across a real dylib
//! boundary (when `cargo test` built the example; otherwise that test says
//! it skipped). With `--features abi-check` the abi_stable root module the
//! SDK exports is checked too.

mod common;

#[path = "../examples/echo_plugin.rs"]
#[allow(dead_code)]
mod echo;

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::Ordering;

use common::{Event, Loaded, MockHost};
use rill_abi::*;

fn scenario(desc: *const RillPluginDescriptor) {
    let host = MockHost::new("listen: 127.0.0.1:17777\n");
    // SAFETY: a descriptor from the plugin's entry point.
    let p = unsafe { Loaded::create(desc, &host) }.unwrap();
    // SAFETY: static strings of the plugin.
    unsafe {
        assert_eq!(p.desc.name.to_str(), Some("echo"));
        assert_eq!(p.desc.version.to_str(), Some("1.0.0"));
        assert_eq!(
            p.desc.description.to_str(),
            Some("SDK example: echo, publish, subscribe")
        );
    }
    assert!(p.desc.on_stream_event.is_none(), "not asked for");
    assert_eq!(
        *host.listeners.lock().unwrap(),
        vec![("127.0.0.1:17777".to_string(), 1, 0)]
    );
    assert_eq!(
        *host.routes.lock().unwrap(),
        vec![("GET".to_string(), "/echo/*".to_string(), 7)]
    );
    assert!(host
        .logs_text()
        .contains("echo listening on 127.0.0.1:17777"));

    // Echo.
    let c = host.conn();
    let su = p.open(&c, 1).unwrap();
    assert!(!su.is_null());
    assert_eq!(p.data(su, &c, b"hello"), RILL_OK);
    assert_eq!(c.output(), b"hello");

    // Publish: alloc -> fill -> freeze -> write.
    assert_eq!(p.data(su, &c, b"pub live/a"), RILL_OK);
    let video = RillTrackInfo {
        kind: RILL_TRACK_VIDEO,
        codec: RILL_CODEC_H264,
        ..RillTrackInfo::new()
    };
    let key = RillFrameInfo {
        codec: RILL_CODEC_H264,
        flags: RILL_FRAME_KEY,
        ..RillFrameInfo::new()
    };
    assert_eq!(
        *host.events.lock().unwrap(),
        vec![
            Event::Open("live/a".into()),
            Event::Track(0, video),
            Event::Frame(key, vec![0, 0, 0, 0])
        ]
    );

    // Subscribe, and mux once for two viewers through the frame cache.
    let c2 = host.conn();
    let su2 = p.open(&c2, 1).unwrap();
    assert_eq!(p.data(su, &c, b"sub live/b"), RILL_OK);
    assert_eq!(p.data(su2, &c2, b"sub live/b"), RILL_OK);
    assert_eq!(host.subscriptions.lock().unwrap().len(), 2);
    let f = host.frame(b"xyz", RillFrameInfo::new());
    let live_before = host.live_frames.load(Ordering::Relaxed);
    assert_eq!(p.frame(su, ptr::null_mut(), f), RILL_OK);
    assert_eq!(
        host.live_frames.load(Ordering::Relaxed),
        live_before + 1,
        "one muxed frame, cached"
    );
    assert_eq!(p.frame(su2, ptr::null_mut(), f), RILL_OK);
    assert_eq!(
        host.live_frames.load(Ordering::Relaxed),
        live_before + 1,
        "cache hit"
    );
    assert!(c.output().ends_with(b"frame:xyz"));
    assert_eq!(c2.output(), b"frame:xyz");
    // SAFETY: the test's reference.
    unsafe { common::frame_release(f) };

    // A panic is caught, logged, and becomes RILL_ERR_PANIC.
    assert_eq!(p.data(su, &c, b"panic"), RILL_ERR_PANIC);
    assert!(
        host.logs_text()
            .contains("plugin panicked in on_conn_data: asked to panic"),
        "{}",
        host.logs_text()
    );

    // A post from another thread, delivered on the session.
    assert_eq!(p.data(su, &c, b"post"), RILL_OK);
    let (to, arg) = host.posts.lock().unwrap()[0];
    assert_eq!(to, c.id);
    // SAFETY: delivering the post as the host would.
    let rc = unsafe { (p.desc.on_post.unwrap())(p.instance, su, c.raw(), arg as *mut c_void) };
    assert_eq!(rc, RILL_OK);
    assert!(c.output().ends_with(b"posted"));

    // A session callback without its state is refused, not trusted.
    assert_eq!(p.data(ptr::null_mut(), &c, b"x"), RILL_ERR_INVALID);

    // HTTP.
    let hc = host.conn();
    let req = RillHttpRequest {
        struct_size: std::mem::size_of::<RillHttpRequest>() as u32,
        flags: 0,
        method: RillStr::from_str("GET"),
        path: RillStr::from_str("/echo/x"),
        query: RillStr::from_str("a=1"),
        headers: ptr::null(),
        header_count: 0,
        body: RillBytes::EMPTY,
    };
    let mut hsu = ptr::null_mut();
    // SAFETY: a valid request borrowed for the call.
    let rc = unsafe { (p.desc.on_http_request.unwrap())(p.instance, hc.raw(), 7, &req, &mut hsu) };
    assert_eq!(rc, RILL_OK);
    assert_eq!(hc.output(), b"HTTP/1.1 200\r\n\r\necho /echo/x?a=1");
    assert_eq!(*hc.closed.lock().unwrap(), Some(RILL_END_NORMAL));
    let mut none = ptr::null_mut();
    // SAFETY: as above.
    let rc = unsafe { (p.desc.on_http_request.unwrap())(p.instance, hc.raw(), 8, &req, &mut none) };
    assert_eq!(rc, RILL_ERR_NOT_FOUND);

    p.close(hsu, &hc, RILL_END_NORMAL);
    p.close(su2, &c2, RILL_END_PEER);
    p.close(su, &c, RILL_END_PEER);
    assert_eq!(host.events.lock().unwrap().last(), Some(&Event::Closed));
    p.destroy();
    assert_eq!(host.live_frames.load(Ordering::Relaxed), 0, "leaked frames");
}

#[test]
fn sdk_plugin_in_process() {
    // SAFETY: calling the entry point as the host does.
    let desc = unsafe { echo::rill_plugin_entry_v1(1, 0) };
    // SAFETY: as above.
    assert!(unsafe { echo::rill_plugin_entry_v1(2, 0) }.is_null());
    scenario(desc);
}

fn example_dylib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let p = dir.join(format!(
        "{}echo_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    p.exists().then_some(p)
}

#[test]
fn sdk_plugin_as_dylib() {
    let Some(path) = example_dylib() else {
        eprintln!(
            "SKIPPED sdk_plugin_as_dylib: examples/echo_plugin was not built \
             (run the whole `cargo test -p rill-abi`, which builds examples)"
        );
        return;
    };
    // SAFETY: our own example plugin.
    let lib = unsafe { libloading::Library::new(&path) }.unwrap();
    // SAFETY: the entry point's type.
    let entry: libloading::Symbol<RillPluginEntryV1> =
        unsafe { lib.get(b"rill_plugin_entry_v1\0") }.unwrap();
    // SAFETY: called as the host does.
    scenario(unsafe { entry(1, 0) });

    #[cfg(feature = "abi-check")]
    {
        let root = rill_abi::stable::check_layout(&path)
            .expect("layout check")
            .expect("the SDK exports a root module");
        assert_eq!(root.abi_major(), RILL_ABI_MAJOR);
        assert_eq!(root.abi_minor(), RILL_ABI_MINOR);
        // SAFETY: the checked entry point.
        assert_eq!(unsafe { (root.entry())(1, 0) }, unsafe { entry(1, 0) });
    }
}

#[cfg(feature = "abi-check")]
#[test]
fn sdk_exports_a_checkable_root_module() {
    use rill_abi::stable::RillRootModuleRef;
    let root = echo::_1as_0lib_1header_0root_bmodule_bloader
        .init_root_module::<RillRootModuleRef>()
        .expect("root module");
    // SAFETY: the entry point it carries.
    let d = unsafe { (root.entry())(1, 0) };
    // SAFETY: as above.
    assert_eq!(d, unsafe { echo::rill_plugin_entry_v1(1, 0) });
}
