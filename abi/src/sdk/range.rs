//! HTTP `Range` for plugins (and the host) that serve files.

/// A range that cannot be served: answer 416 with `Content-Range: bytes */len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// `Range: bytes=…` (RFC 9110 14.1.2) against a body of `len` bytes: the
/// half-open `[start, end)` asked for; `Ok(None)` without a header, with
/// another unit, or with several ranges (the whole body is then served, as
/// the RFC allows).
pub fn byte_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last `b` bytes.
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(Some((len.saturating_sub(n), len)));
    }
    let start: u64 = a.parse().map_err(|_| Unsatisfiable)?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<u64>()
            .map_err(|_| Unsatisfiable)?
            .saturating_add(1)
            .min(len)
    };
    if start >= len || end <= start {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::{byte_range, Unsatisfiable};

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Ok(Some((0, 10))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Ok(Some((90, 100))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 100))));
        assert_eq!(byte_range(Some("bytes=-1000"), 100), Ok(Some((0, 100))));
        assert_eq!(byte_range(Some("bytes=50-5000"), 100), Ok(Some((50, 100))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=9-3"), 100), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=x-3"), 100), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=-0"), 100), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 100), Ok(None));
    }
}
