//! An HTTP progressive fMP4 player (`GET /{app}/{stream}.mp4`): one
//! response, chunked or close-delimited, carrying an init segment and then
//! `moof`/`mdat` fragments live from a key frame, read box by box
//! ([`Mp4Stream`]). Stalls are judged by playback (a fragment may hold
//! many frames), as for HLS.

use std::time::{Duration, Instant};

use crate::http::{Fail, HttpConn};
use crate::httpflv::{HttpUrl, Res};
use crate::media::Mp4Stream;
use crate::stats::{Player, Playout, Shared};

/// A player: GET, then count until `end`.
pub async fn play(
    url: HttpUrl,
    p: &mut Player,
    shared: &Shared,
    end: Instant,
    read_buf: usize,
) -> Res<()> {
    p.playout = Some(Playout::new(Duration::ZERO));
    let mut conn = HttpConn::new(read_buf);
    let mut stream = Mp4Stream::default();
    let mut connected = None;
    let r = {
        let p = &mut *p;
        conn.request_with_head(
            &url,
            None,
            end,
            // A live body: only the end of the run cuts it.
            Duration::from_secs(365 * 86400),
            &mut |status| {
                if !(200..300).contains(&status) {
                    return Err(format!("HTTP {status}"));
                }
                connected = Some(Instant::now());
                Ok(())
            },
            &mut |d| stream.feed(d, p, shared, Instant::now()),
        )
        .await
    };
    p.connected = connected;
    p.bytes += conn.bytes;
    match r {
        Ok(_) => Err("closed by server".into()),
        Err(Fail::End) => Ok(()),
        Err(Fail::Err(e)) => Err(e),
    }
}
