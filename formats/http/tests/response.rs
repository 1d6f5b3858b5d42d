//! The response reader against the framings of RFC 9112, cut at every
//! byte, and against what servers get wrong.

use rill_http::fuzzing::{read, Outcome};
use rill_http::{redirect_location, Error, Event, Framing, Limits, Request, ResponseReader, Url};

fn get() -> Request {
    Request::get(&Url::parse("http://h:8080/live/x.flv").unwrap())
}

fn whole(data: &[u8]) -> Outcome {
    read(&get(), &Limits::default(), data, &[usize::MAX])
}

/// Reads `data` whole, then cut in two at every position, then byte by
/// byte: all must agree. Returns the whole reading.
fn every_cut(request: &Request, limits: &Limits, data: &[u8]) -> Outcome {
    let one = read(request, limits, data, &[usize::MAX]);
    for cut in 1..data.len() {
        let two = read(request, limits, data, &[cut, usize::MAX]);
        assert_eq!(two, one, "cut at {cut}");
    }
    assert_eq!(read(request, limits, data, &[1]), one, "byte by byte");
    one
}

#[test]
fn content_length() {
    let data =
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nContent-Length: 5\r\n\r\nFLV\x01\x05";
    let o = every_cut(&get(), &Limits::default(), data);
    let head = o.head.unwrap();
    assert_eq!(
        (head.version, head.status, &head.reason[..]),
        (1, 200, "OK")
    );
    assert_eq!(head.headers.get("content-type"), Some("video/x-flv"));
    assert_eq!(head.headers.get("CONTENT-LENGTH"), Some("5"));
    assert_eq!(o.body, b"FLV\x01\x05");
    assert!(o.end && o.error.is_none());
    assert_eq!(o.framing, Some(Framing::Length(5)));

    // Bytes past Content-Length are dropped; the reader is done.
    let o = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef");
    assert_eq!((o.body.as_slice(), o.end), (&b"ab"[..], true));
    let o = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(o.end && o.body.is_empty());
    // Repeated identical values are one length; different ones are not.
    let o = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(o.body, b"abc");
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    ] {
        assert!(
            matches!(whole(bad).error, Some(Error::Malformed(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn chunked_split_at_every_byte() {
    let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
        4\r\nWiki\r\n5;name=value\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n\
        0\r\nExpires: never\r\nX-Other: 1\r\n\r\nIGNORED";
    let o = every_cut(&get(), &Limits::default(), data);
    assert_eq!(o.framing, Some(Framing::Chunked));
    assert_eq!(o.body, b"Wikipedia in\r\n\r\nchunks.");
    assert!(o.end && o.error.is_none());

    // Bare LF line ends, upper-case hex, leading zeros, the coding named
    // in any case, "identity" ignored.
    let data = b"HTTP/1.1 200 OK\nTransfer-Encoding: identity, CHUNKED\n\n00A\nabcdefghij\n0\n\n";
    let o = every_cut(&get(), &Limits::default(), data);
    assert_eq!((o.body.as_slice(), o.end), (&b"abcdefghij"[..], true));
}

#[test]
fn chunked_body_pieces_are_slices_as_they_arrive() {
    let mut r = ResponseReader::new(&get(), Limits::default());
    r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nabc")
        .unwrap();
    assert!(matches!(r.poll_event(), Some(Event::Head(_))));
    assert_eq!(r.poll_event(), Some(Event::Body("abc".into())));
    assert_eq!(r.poll_event(), None);
    r.feed(b"defgh\r\n").unwrap();
    assert_eq!(r.poll_event(), Some(Event::Body("defgh".into())));
    assert_eq!(r.body_len(), 8);
    assert!(!r.is_done());
    // Closed inside a chunked body: an error, the data so far delivered.
    assert_eq!(r.finish(), Err(Error::Truncated("chunked body")));
    assert_eq!(r.feed(b"1\r\nx\r\n"), Err(Error::Truncated("chunked body")));

    // Closed after the last chunk but before the final CRLF: complete.
    let o = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
    assert_eq!((o.body.as_slice(), o.end, o.error), (&b"x"[..], true, None));
}

#[test]
fn until_close() {
    let data = b"HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\nFLV\x01\x05\x00\x00\x00\x09";
    let o = every_cut(&get(), &Limits::default(), data);
    assert_eq!(o.framing, Some(Framing::UntilClose));
    assert_eq!(o.head.unwrap().version, 0);
    assert_eq!(o.body, b"FLV\x01\x05\x00\x00\x00\x09");
    assert!(o.end && o.error.is_none());

    // End only at finish().
    let mut r = ResponseReader::new(&get(), Limits::default());
    r.feed(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap();
    assert!(matches!(r.poll_event(), Some(Event::Head(_))));
    assert_eq!(r.poll_event(), Some(Event::Body("abc".into())));
    assert_eq!(r.poll_event(), None);
    r.finish().unwrap();
    assert_eq!(r.poll_event(), Some(Event::End));
    assert!(r.is_done());
    r.finish().unwrap();
    assert_eq!(r.poll_event(), None);
}

#[test]
fn interim_responses_are_skipped() {
    let data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let o = every_cut(&get(), &Limits::default(), data);
    let head = o.head.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.headers.get("link"), None);
    assert_eq!(o.body, b"ok");

    let o = whole(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert!(matches!(o.error, Some(Error::Unsupported(_))));
    assert!(o.head.is_none());
}

#[test]
fn no_body_for_head_204_304() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n";
    let head = Request::head(&Url::parse("http://h/x").unwrap());
    let o = every_cut(&head, &Limits::default(), data);
    assert_eq!(o.framing, Some(Framing::Empty));
    assert!(o.end && o.body.is_empty() && o.error.is_none());
    for status in ["204 No Content", "304 Not Modified"] {
        let data = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
        let o = whole(data.as_bytes());
        assert!(o.end && o.body.is_empty() && o.error.is_none(), "{status}");
    }
}

#[test]
fn redirects() {
    let base = Url::parse("http://origin:8080/live/x.flv?token=1").unwrap();
    for status in [301, 302, 303, 307, 308] {
        let data = format!(
            "HTTP/1.1 {status} Moved\r\nLocation:  ../edge/x.flv?token=2 \r\nContent-Length: 5\r\n\r\nmoved"
        );
        let o = whole(data.as_bytes());
        let head = o.head.unwrap();
        let loc = redirect_location(&head).unwrap();
        assert_eq!(loc, "../edge/x.flv?token=2");
        assert_eq!(
            base.join(loc).unwrap().to_string(),
            "http://origin:8080/edge/x.flv?token=2"
        );
        assert_eq!(o.body, b"moved");
    }
    let o = whole(b"HTTP/1.1 300 Multiple\r\nLocation: /a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(redirect_location(&o.head.unwrap()), None);
    let o = whole(b"HTTP/1.1 302 Found\r\nLocation:\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(redirect_location(&o.head.unwrap()), None);
    let o = whole(b"HTTP/1.1 302 Found\r\nLocation: https://cdn.example/x.flv\r\n\r\n");
    let head = o.head.unwrap();
    assert!(!head.is_success());
    let next = base.join(redirect_location(&head).unwrap()).unwrap();
    assert_eq!((next.host(), next.port()), ("cdn.example", 443));
}

#[test]
fn lenient_where_servers_are() {
    // Leading empty lines, no reason phrase, two spaces, a folded header,
    // a space before the colon, a non-UTF-8 value.
    let data = b"\r\n\r\nHTTP/1.1  404\r\nX-Folded: a\r\n  b\r\nServer : x\r\nX-Bin: \xff\r\nContent-Length: 0\r\n\r\n";
    let o = every_cut(&get(), &Limits::default(), data);
    let head = o.head.unwrap();
    assert_eq!((head.status, head.reason.as_str()), (404, ""));
    assert_eq!(head.headers.get("x-folded"), Some("a    b"));
    assert_eq!(head.headers.get("server"), Some("x"));
    assert_eq!(head.headers.get("x-bin"), Some("\u{fffd}"));
    assert_eq!(head.headers.len(), 4);
    assert!(head.headers.has_token("content-length", "0"));
    assert!(o.end);
}

#[test]
fn oversize_head_and_too_many_headers() {
    let limits = Limits {
        max_head: 64,
        max_headers: 2,
        ..Limits::default()
    };
    let long = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n", "a".repeat(64));
    let o = every_cut(&get(), &limits, long.as_bytes());
    assert_eq!(o.error, Some(Error::HeadTooLarge(64)));
    // Without an end in sight, too: refused once 64 bytes are held.
    let mut r = ResponseReader::new(&get(), limits.clone());
    r.feed(&long.as_bytes()[..60]).unwrap();
    assert_eq!(
        r.feed(&long.as_bytes()[60..70]),
        Err(Error::HeadTooLarge(64))
    );

    let many = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        every_cut(&get(), &limits, many).error,
        Some(Error::TooManyHeaders(2))
    );
    // Trailers are bounded the same way.
    let trailers =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        every_cut(&get(), &limits, trailers).error,
        Some(Error::TooManyHeaders(2))
    );
    let mut long_trailer =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: ".to_vec();
    long_trailer.extend_from_slice(&[b'x'; 100]);
    assert_eq!(
        every_cut(&get(), &limits, &long_trailer).error,
        Some(Error::HeadTooLarge(64))
    );
}

#[test]
fn bad_chunk_sizes() {
    let limits = Limits {
        max_chunk_line: 32,
        ..Limits::default()
    };
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (chunks, want) in [
        ("zz\r\n".to_string(), Error::Malformed("chunk size")),
        ("\r\n".to_string(), Error::Malformed("chunk size")),
        (
            "-5\r\nabcde\r\n".to_string(),
            Error::Malformed("chunk size"),
        ),
        (
            "5 x\r\nabcde\r\n".to_string(),
            Error::Malformed("chunk size"),
        ),
        (
            "1ffffffffffffffff\r\n".to_string(),
            Error::Malformed("chunk size (overflows 64 bits)"),
        ),
        (
            "3\r\nabcd\r\n".to_string(),
            Error::Malformed("chunk (data longer than its size)"),
        ),
        (
            format!("3;{}\r\n", "a".repeat(30)),
            Error::ChunkLineTooLong(32),
        ),
        ("0".repeat(33), Error::ChunkLineTooLong(32)),
    ] {
        let data = format!("{head}{chunks}");
        let o = every_cut(&get(), &limits, data.as_bytes());
        assert_eq!(o.error, Some(want), "{chunks:?}");
    }
}

#[test]
fn truncated_bodies() {
    let o = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(o.body, b"abc");
    assert_eq!(
        o.error,
        Some(Error::Truncated("body (shorter than Content-Length)"))
    );
    assert!(!o.end);
    let o = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    assert_eq!((o.body.as_slice(), o.end), (&b"ab"[..], false));
    assert_eq!(o.error, Some(Error::Truncated("chunked body")));
    assert_eq!(
        whole(b"HTTP/1.1 200 OK\r\nContent-Le").error,
        Some(Error::Truncated("response head"))
    );
    assert_eq!(
        whole(b"").error,
        Some(Error::Truncated("response (none arrived)"))
    );
}

#[test]
fn garbage_is_refused_early() {
    for bad in [
        &b"FLV\x01\x05\x00\x00\x00\x09"[..],
        b"RTSP/1.0 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"\x03\x00\x00\x00",
    ] {
        let mut r = ResponseReader::new(&get(), Limits::default());
        assert!(
            matches!(r.feed(&bad[..1]), Err(Error::Malformed(_))),
            "{bad:?}"
        );
    }
    for bad in [
        &b"HTTP/2 200\r\n\r\n"[..],
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    ] {
        let o = every_cut(&get(), &Limits::default(), bad);
        assert!(
            matches!(o.error, Some(Error::Malformed(_))),
            "{bad:?}: {o:?}"
        );
    }
}

#[test]
fn transfer_codings() {
    let o = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert!(matches!(o.error, Some(Error::Unsupported(_))));
    let o = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert!(matches!(o.error, Some(Error::Unsupported(_))));
    let o = whole(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(matches!(o.error, Some(Error::Malformed(_))));
    let o = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nx");
    assert_eq!(
        (o.framing, o.body.as_slice()),
        (Some(Framing::UntilClose), &b"x"[..])
    );
}

#[test]
fn body_limit() {
    let limits = Limits {
        max_body: 4,
        ..Limits::default()
    };
    let o = every_cut(
        &get(),
        &limits,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde",
    );
    assert_eq!(o.error, Some(Error::BodyTooLarge { len: 5, max: 4 }));
    assert!(o.body.is_empty());
    let o = every_cut(
        &get(),
        &limits,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(o.error, Some(Error::BodyTooLarge { len: 5, max: 4 }));
    assert_eq!(o.body, b"abc");
    // Until close: delivered up to the limit, then refused (however cut).
    let o = every_cut(&get(), &limits, b"HTTP/1.1 200 OK\r\n\r\nabcdef");
    assert!(matches!(o.error, Some(Error::BodyTooLarge { max: 4, .. })));
    assert_eq!(o.body, b"abcd");
    let o = every_cut(&get(), &limits, b"HTTP/1.1 200 OK\r\n\r\nabcd");
    assert_eq!((o.body.as_slice(), o.end), (&b"abcd"[..], true));
}

#[test]
fn buffered_bytes_are_bounded() {
    let limits = Limits {
        max_buffered: 10,
        ..Limits::default()
    };
    let mut r = ResponseReader::new(&get(), limits);
    r.feed(b"HTTP/1.1 200 OK\r\n\r\n0123456789").unwrap();
    // Ten body bytes held, not polled: one more is fine...
    r.feed(b"a").unwrap();
    // ...but now the caller is not draining.
    assert_eq!(r.feed(b"b"), Err(Error::BufferFull(10)));
    // Events from before the error still come out.
    assert!(matches!(r.poll_event(), Some(Event::Head(_))));
    assert_eq!(r.poll_event(), Some(Event::Body("0123456789".into())));
    assert_eq!(r.poll_event(), Some(Event::Body("a".into())));
    assert_eq!(r.poll_event(), None);
    assert_eq!(r.finish(), Err(Error::BufferFull(10)));
}

#[test]
fn errors_read_well() {
    for (e, text) in [
        (
            Error::HeadTooLarge(16384),
            "response head exceeds 16384 bytes",
        ),
        (
            Error::BodyTooLarge { len: 5, max: 4 },
            "body of 5 bytes exceeds the limit of 4",
        ),
        (
            Error::Truncated("chunked body"),
            "connection closed inside the chunked body",
        ),
        (Error::Malformed("chunk size"), "malformed chunk size"),
    ] {
        assert_eq!(e.to_string(), text);
    }
}
