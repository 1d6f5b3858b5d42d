//! The versioning rules: tables are read through `struct_size`, fields past
//! it read as NULL, `rill_has!` agrees with C's `RILL_HAS`, and the host's
//! descriptor checks refuse what they must.

use std::mem::{offset_of, size_of};

use rill_abi::*;

unsafe extern "C" fn create(
    _: *const RillHostApi,
    _: *mut RillHost,
    _: *mut *mut std::ffi::c_void,
) -> i32 {
    RILL_OK
}
unsafe extern "C" fn destroy(_: *mut std::ffi::c_void) {}

fn good() -> RillPluginDescriptor {
    let mut d = rill_descriptor_empty("good-plugin_1", "1.0");
    d.create = Some(create);
    d.destroy = Some(destroy);
    d
}

#[test]
fn abi_1_1_to_1_7_append_after_1_0() {
    // 1.1 appended fields: 1.0's sizes end where 1.0's last fields end,
    // and every 1.1 field lies past them.
    assert_eq!(RILL_ABI_MINOR, 8);
    assert_eq!(
        rill_v1_0_size_of_descriptor(),
        offset_of!(RillPluginDescriptor, on_udp_packet)
    );
    assert_eq!(
        rill_v1_0_size_of_host_api(),
        offset_of!(RillHostApi, udp_listen)
    );
    assert_eq!(
        rill_v1_1_size_of_descriptor(),
        rill_v1_0_size_of_descriptor() + size_of::<usize>()
    );
    assert_eq!(
        rill_v1_1_size_of_host_api(),
        rill_v1_0_size_of_host_api() + 3 * size_of::<usize>()
    );
    // 1.2 appended one callback and one call.
    assert_eq!(
        rill_v1_3_size_of_descriptor(),
        rill_v1_1_size_of_descriptor() + size_of::<usize>()
    );
    assert_eq!(
        rill_v1_2_size_of_host_api(),
        rill_v1_1_size_of_host_api() + size_of::<usize>()
    );
    // 1.3 appended one call.
    assert_eq!(
        rill_v1_3_size_of_host_api(),
        rill_v1_2_size_of_host_api() + size_of::<usize>()
    );
    // 1.4 appended one callback (on_io) and ten calls (storage, index).
    assert_eq!(
        size_of::<RillPluginDescriptor>(),
        rill_v1_3_size_of_descriptor() + size_of::<usize>()
    );
    assert_eq!(
        rill_v1_4_size_of_host_api(),
        rill_v1_3_size_of_host_api() + 10 * size_of::<usize>()
    );
    // 1.5 appended three calls (publisher_set_source, cluster_locate,
    // metric_set).
    assert_eq!(
        rill_v1_5_size_of_host_api(),
        rill_v1_4_size_of_host_api() + 3 * size_of::<usize>()
    );
    // 1.6 appended one call (http_pin).
    assert_eq!(
        rill_v1_6_size_of_host_api(),
        rill_v1_5_size_of_host_api() + size_of::<usize>()
    );
    // 1.7 appended one call (publish_derived) and the subscribe options'
    // audio codecs.
    assert_eq!(
        rill_v1_7_size_of_host_api(),
        rill_v1_6_size_of_host_api() + size_of::<usize>()
    );
    // 1.8 appended three calls (http_publish, http_unpublish, http_expect).
    assert_eq!(
        size_of::<RillHostApi>(),
        rill_v1_7_size_of_host_api() + 3 * size_of::<usize>()
    );
    assert_eq!(rill_v1_6_size_of_subscribe_options(), 16);
    assert_eq!(size_of::<RillSubscribeOptions>(), 16 + 16);
    assert_eq!(
        size_of::<RillRecording>(),
        8 + 5 * 2 * size_of::<usize>() + 32
    );
    assert_eq!(size_of::<RillAdmission>(), 8 + 5 * 2 * size_of::<usize>());
    assert_eq!(size_of::<RillSockAddr>(), 24);
    assert_eq!(offset_of!(RillHostApi, struct_size), 0);
    assert_eq!(offset_of!(RillHostApi, abi_major), 4);
    assert_eq!(offset_of!(RillHostApi, abi_minor), 6);
    assert_eq!(offset_of!(RillPluginDescriptor, magic), 0);
    assert_eq!(offset_of!(RillPluginDescriptor, struct_size), 4);
    assert_eq!(offset_of!(RillPluginDescriptor, abi_major), 8);
    assert_eq!(&RILL_PLUGIN_MAGIC.to_le_bytes(), b"RILL");
}

#[test]
fn reading_an_older_shorter_table_zero_fills() {
    let mut info = RillFrameInfo::new();
    info.track = 7;
    info.codec = RILL_CODEC_AAC;
    info.flags = RILL_FRAME_KEY;
    info.pts = 99;
    info.dts = 98;
    // An "older" writer that only knew the fields up to `flags`.
    info.struct_size = offset_of!(RillFrameInfo, pts) as u32;
    // SAFETY: a valid struct with at least struct_size bytes.
    let read = unsafe { rill_read_sized(&info) }.unwrap();
    assert_eq!(
        (read.track, read.codec, read.flags),
        (7, RILL_CODEC_AAC, RILL_FRAME_KEY)
    );
    assert_eq!(
        (read.pts, read.dts),
        (0, 0),
        "fields past struct_size read as zero"
    );
    assert!(rill_has!(RillFrameInfo, &read, flags));
    assert!(!rill_has!(RillFrameInfo, &read, pts));
    // A struct_size below the header itself is refused.
    info.struct_size = 2;
    // SAFETY: as above.
    assert!(unsafe { rill_read_sized(&info) }.is_none());
    // SAFETY: NULL is allowed.
    assert!(unsafe { rill_read_sized::<RillFrameInfo>(std::ptr::null()) }.is_none());
}

#[test]
fn host_api_reads() {
    let api = rill_host_api_empty();
    // SAFETY: a valid table.
    let read = unsafe { rill_read_host_api(&api) }.unwrap();
    assert!(rill_has!(RillHostApi, &read, post));
    let mut old = api;
    old.struct_size = offset_of!(RillHostApi, listen) as u32;
    // SAFETY: a valid table, claiming to be shorter than 1.0's: refused.
    assert!(unsafe { rill_read_host_api(&old) }.is_none());
    let mut other = api;
    other.abi_major = 2;
    // SAFETY: a valid table of another major: refused.
    assert!(unsafe { rill_read_host_api(&other) }.is_none());
}

#[test]
fn descriptor_checks() {
    let d = good();
    // SAFETY: valid descriptors with static strings, below.
    unsafe {
        let ok = rill_read_descriptor(&d).unwrap();
        assert_eq!(ok.name.to_str(), Some("good-plugin_1"));
        assert_eq!(
            rill_read_descriptor(std::ptr::null()).err(),
            Some(DescriptorError::Null)
        );

        let mut bad = d;
        bad.magic = 0x1234;
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::BadMagic(0x1234))
        );
        let mut bad = d;
        bad.abi_major = 2;
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::AbiMajor(2))
        );
        let mut bad = d;
        bad.struct_size = 64;
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::TooSmall(64))
        );
        let mut bad = d;
        bad.create = None;
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::MissingCallback("create"))
        );
        let mut bad = d;
        bad.destroy = None;
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::MissingCallback("destroy"))
        );
        for name in ["", "Upper", "with space", "dot.ted"] {
            let mut bad = d;
            bad.name = RillStr::from_str(name);
            assert_eq!(
                rill_read_descriptor(&bad).err(),
                Some(DescriptorError::BadName),
                "{name:?}"
            );
        }
        let mut bad = d;
        bad.version = RillStr::from_bytes(b"\xff\xfe");
        assert_eq!(
            rill_read_descriptor(&bad).err(),
            Some(DescriptorError::BadText)
        );

        // A newer plugin (bigger descriptor) is read up to what we know.
        #[repr(C)]
        struct Newer {
            d: RillPluginDescriptor,
            extra: usize,
        }
        let mut newer = Newer { d, extra: 42 };
        newer.d.struct_size = size_of::<Newer>() as u32;
        let read = rill_read_descriptor(&newer.d).unwrap();
        assert_eq!(read.struct_size as usize, size_of::<Newer>());
        assert!(rill_has!(RillPluginDescriptor, &read, on_udp_data));
        assert_eq!(newer.extra, 42);
    }
    let msg = DescriptorError::AbiMajor(2).to_string();
    assert!(msg.contains("ABI major 2"), "{msg}");
}

#[test]
fn status_names() {
    assert_eq!(rill_status_name(RILL_OK), "ok");
    assert_eq!(rill_status_name(RILL_ERR_BUSY), "busy");
    assert_eq!(rill_status_name(RILL_ERR_INTERNAL), "internal error");
    assert_eq!(rill_status_name(-999), "unknown");
    // The C twin (rill_status_str in the header) lists the same names.
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/rill.h")).unwrap();
    for code in -14..=2 {
        let line = format!("case {code}: return \"{}\";", rill_status_name(code));
        assert!(header.contains(&line), "rill_status_str lacks `{line}`");
    }
}
