//! SRT (Secure Reliable Transport) for Rill, sans-IO: bytes and time in,
//! datagrams and payloads out, no sockets and no runtime. Live mode as
//! libsrt speaks it (draft-sharabayko-srt): the HSv5 handshake on both
//! sides ([`listener`] with stateless cookies, [`caller`]), ARQ with NAK
//! reports and retransmission, timestamp-based delivery with too-late drop
//! ([`conn`]), AES-CTR encryption with libsrt's key material
//! ([`crypto`]), and the stream id conventions encoders use
//! ([`streamid`]), and the query of an `srt://` URL a caller is given
//! ([`uri`]). The payloads are MPEG-TS (`rill-ts` muxes and demuxes
//! them).

pub mod caller;
pub mod conn;
pub mod crypto;
pub mod fuzzing;
pub mod handshake;
pub mod listener;
pub mod packet;
pub mod seq;
pub mod streamid;
pub mod uri;

pub use caller::Caller;
pub use conn::{Closed, Connection, Settings, Stats, MAX_PAYLOAD};
pub use listener::{Answer, Config, Listener, Pending};
pub use seq::Seq;
pub use streamid::{Mode, StreamId};
pub use uri::CallerParams;

/// What went wrong with a datagram or a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a valid packet of the named kind.
    Malformed(&'static str),
    /// Valid but not supported (file mode, a cipher other than AES-CTR).
    Unsupported(&'static str),
    /// The key material did not unwrap: wrong passphrase.
    BadSecret,
    /// The listener refused the handshake with this reason
    /// ([`handshake::reject`]).
    Rejected(i32),
    /// The connection is closed.
    Closed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(w) => write!(f, "malformed {w}"),
            Error::Unsupported(w) => write!(f, "unsupported: {w}"),
            Error::BadSecret => f.write_str("wrong passphrase"),
            Error::Rejected(r) => write!(f, "rejected ({r})"),
            Error::Closed => f.write_str("connection closed"),
        }
    }
}

impl std::error::Error for Error {}
