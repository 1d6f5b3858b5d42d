//! Stream ids as encoders send them: `publish:live/x`, `read:live/x` or
//! `subscribe:live/x` (MediaMTX, SRS), SRT's access-control form
//! `#!::r=live/x,m=publish,u=user`, or a bare `live/x` (play). Anything
//! after `?` (and unknown `#!::` keys) is kept as the query for
//! authorization.

/// What the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send a stream.
    Publish,
    /// Receive a stream.
    Play,
}

/// A parsed stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamId {
    /// Publish or play.
    pub mode: Mode,
    /// The stream path, without a leading `/`.
    pub path: String,
    /// Query-style parameters (`token=…&…`), "" when none.
    pub query: String,
    /// The `u=` user of the access-control form.
    pub user: Option<String>,
}

/// Why a stream id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamIdError {
    /// No stream path.
    Empty,
    /// An `m=` mode other than request/publish.
    Mode,
}

impl std::fmt::Display for StreamIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamIdError::Empty => "stream id names no stream",
            StreamIdError::Mode => "stream id mode is neither request nor publish",
        })
    }
}

fn path_and_query(s: &str) -> (String, String) {
    let (p, q) = s.split_once('?').unwrap_or((s, ""));
    (p.trim().trim_start_matches('/').to_string(), q.to_string())
}

impl StreamId {
    /// Parses a stream id.
    pub fn parse(sid: &str) -> Result<StreamId, StreamIdError> {
        let mut out = if let Some(rest) = sid.strip_prefix("#!::") {
            let mut id = StreamId {
                mode: Mode::Play,
                path: String::new(),
                query: String::new(),
                user: None,
            };
            let mut query = Vec::new();
            for kv in rest.split(',') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                match k.trim() {
                    "r" => {
                        let (p, q) = path_and_query(v);
                        id.path = p;
                        if !q.is_empty() {
                            query.push(q);
                        }
                    }
                    "m" => {
                        id.mode = match v.trim() {
                            "publish" => Mode::Publish,
                            "request" | "" => Mode::Play,
                            _ => return Err(StreamIdError::Mode),
                        }
                    }
                    "u" => id.user = Some(v.to_string()),
                    "" => {}
                    _ => query.push(kv.to_string()),
                }
            }
            id.query = query.join("&");
            id
        } else {
            let (mode, rest) = match sid.split_once(':') {
                Some(("publish", r)) => (Mode::Publish, r),
                Some(("read" | "subscribe" | "play" | "request", r)) => (Mode::Play, r),
                _ => (Mode::Play, sid),
            };
            let (path, query) = path_and_query(rest);
            StreamId {
                mode,
                path,
                query,
                user: None,
            }
        };
        out.path = out.path.trim_end_matches('/').to_string();
        if out.path.is_empty() {
            return Err(StreamIdError::Empty);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (Mode, String, String, Option<String>) {
        let id = StreamId::parse(s).unwrap();
        (id.mode, id.path, id.query, id.user)
    }

    #[test]
    fn conventions() {
        use Mode::*;
        let s = |x: &str| x.to_string();
        assert_eq!(p("publish:live/x"), (Publish, s("live/x"), s(""), None));
        assert_eq!(
            p("publish:live/x?token=abc"),
            (Publish, s("live/x"), s("token=abc"), None)
        );
        assert_eq!(p("read:live/x"), (Play, s("live/x"), s(""), None));
        assert_eq!(p("subscribe:/live/x"), (Play, s("live/x"), s(""), None));
        assert_eq!(p("live/x"), (Play, s("live/x"), s(""), None));
        assert_eq!(
            p("#!::r=live/x,m=publish,u=bob,token=t1"),
            (Publish, s("live/x"), s("token=t1"), Some(s("bob")))
        );
        assert_eq!(
            p("#!::m=request,r=live/y"),
            (Play, s("live/y"), s(""), None)
        );
        assert_eq!(StreamId::parse(""), Err(StreamIdError::Empty));
        assert_eq!(StreamId::parse("publish:"), Err(StreamIdError::Empty));
        assert_eq!(
            StreamId::parse("#!::r=a,m=bidirectional"),
            Err(StreamIdError::Mode)
        );
    }
}
