//! Bodies of the fuzz targets (`fuzz/`), shared with the stable smoke test
//! (`tests/fuzz_smoke.rs`): what the plugin reads from the network before
//! any peer exists.
//!
//! - `offer`: an SDP offer as a WHIP/WHEP POST brings it (bounded as the
//!   plugin bounds it), parsed and answered by a peer configured as the
//!   plugin configures them, then every host codec routed; nothing may
//!   panic, and an answer must name the media of the offer.
//! - `http`: request targets and `Authorization` headers.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rill_abi::{
    RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA, RILL_CODEC_PCMU,
};
use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::Event;

use crate::config::Config;
use crate::http::{resource_id, stream_path, Credentials};

fn crypto() -> Arc<CryptoProvider> {
    static C: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    C.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

/// An SDP offer → answer (see the module docs).
pub fn offer(data: &[u8]) {
    if data.len() > Config::default().max_offer {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = SdpOffer::from_sdp_string(text) else {
        return;
    };
    // A viewer's settings: the wider codec list.
    let mut rtc =
        crate::rtc_config(crypto(), "fuzzufrag", crate::Kind::Play, true).build(Instant::now());
    let Ok(answer) = rtc.sdp_api().accept_offer(offer) else {
        return;
    };
    let sdp = answer.to_sdp_string();
    assert!(sdp.starts_with("v=0"));
    let mut link = crate::Link {
        rtc,
        addrs: Vec::new(),
        connected: false,
        closed: None,
        last_rx: Instant::now(),
        inbox: Default::default(),
        dropped: 0,
        mids: Vec::new(),
    };
    while let Ok(str0m::Output::Event(e)) = link.rtc.poll_output() {
        if let Event::MediaAdded(m) = e {
            link.mids.push(m.mid);
        }
    }
    for codec in [
        RILL_CODEC_H264,
        RILL_CODEC_H265,
        RILL_CODEC_OPUS,
        RILL_CODEC_PCMU,
        RILL_CODEC_PCMA,
    ] {
        if let Some((mid, _, rate)) = crate::WebRtc::route(&link, codec) {
            assert!(link.mids.contains(&mid));
            assert!(rate > 0);
        }
    }
}

/// Request targets and credentials: the input split at the first newline
/// into a path and an `Authorization` value.
pub fn http(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (target, auth) = text.split_once('\n').unwrap_or((&text, ""));
    for suffix in ["whip", "whep"] {
        if let Some(p) = stream_path(target, suffix) {
            assert!(p.contains('/'));
            assert!(p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        }
    }
    if let Some(id) = resource_id(target) {
        assert_eq!(id.len(), 32);
    }
    let c = Credentials::from_header(Some(auth));
    assert!(c.token.chars().count() <= 1024);
}
