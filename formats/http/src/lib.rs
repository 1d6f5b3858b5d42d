//! A sans-IO HTTP/1.1 client for Rill's pulling plugins (a relay reading
//! HTTP-FLV, later HLS): one request per connection, bytes in and events
//! out. No sockets, no threads, no clock: the caller owns the connection
//! (and TLS for `https`), writes [`Request::encode`]'s bytes, feeds what it
//! reads to a [`ResponseReader`], and calls [`ResponseReader::finish`] at
//! EOF.
//!
//! - [`url`]: `http`/`https` URLs and reference resolution ([`Url::join`])
//!   for redirects and playlists.
//! - [`request`]: the request ([`Request`]), always `Connection: close`.
//! - [`response`]: the response ([`ResponseReader`]): head, body framing
//!   per RFC 9112 (Content-Length, chunked, until close), 1xx skipped,
//!   HEAD/204/304 without a body, [`redirect_location`].
//! - [`limits`]: the bounds every read honours ([`Limits`]).
//!
//! The status line and headers are parsed by `httparse` (hyper's parser);
//! the chunked coding is decoded here, incrementally, so body pieces are
//! slices of the read buffer rather than copies.
//!
//! # Pulling a live stream
//!
//! ```
//! use rill_http::{redirect_location, Event, Limits, Request, ResponseReader, Url};
//!
//! let url = Url::parse("http://origin:8080/live/x.flv")?;
//! let request = Request::get(&url).header("User-Agent", "Rill");
//! let _bytes_to_send = request.encode()?;
//! let mut reader = ResponseReader::new(&request, Limits::default());
//!
//! reader.feed(b"HTTP/1.1 302 Found\r\nLocation: /edge/x.flv\r\nContent-Length: 0\r\n\r\n")?;
//! let Some(Event::Head(head)) = reader.poll_event() else { unreachable!() };
//! // Following is the caller's choice, on a new connection.
//! let next = url.join(redirect_location(&head).unwrap())?;
//! assert_eq!(next.to_string(), "http://origin:8080/edge/x.flv");
//! assert_eq!(reader.poll_event(), Some(Event::End));
//! # Ok::<(), rill_http::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunked;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod request;
pub mod response;
pub mod url;

pub use error::Error;
pub use limits::Limits;
pub use request::Request;
pub use response::{redirect_location, Event, Framing, Head, Headers, ResponseReader};
pub use url::{Scheme, Url};
