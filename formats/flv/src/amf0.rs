//! AMF0, the value encoding of RTMP commands and FLV script data.
//!
//! Decoding is bounded: nesting depth is limited, element counts read from the
//! wire are never used to pre-allocate more than the remaining input could
//! hold, and the number of decoded items is capped, because a 1-byte null
//! becomes a 32-byte [`Value`]: at most [`DEFAULT_MAX_VALUES`] (or the
//! caller's [`Decoder::max_values`]) and at most one per 4 input bytes beyond
//! the first 64, so decoded memory stays a small multiple of the input.
//! Long strings decode to [`Value::String`]; encoding picks the short or
//! long string marker by length, so `decode` → `encode` → `decode` yields the
//! same values (byte-exactness is not promised: an ECMA array's count field is
//! advisory and is rewritten from the actual number of entries).

use crate::error::Error;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;
const AVMPLUS: u8 = 0x11;

/// Default cap on the items (values and property names) decoded from one
/// body: far above what commands and metadata carry, and at most a few MiB
/// of decoded values.
pub const DEFAULT_MAX_VALUES: usize = 1 << 16;
/// Items any body may decode to, however short (`[null]` is one byte).
const FREE_VALUES: usize = 64;
/// Beyond [`FREE_VALUES`], one item per this many input bytes: real bodies
/// are numbers (9 bytes), strings and named properties, never long runs of
/// 1-byte nulls.
const BYTES_PER_VALUE: usize = 4;

/// The item cap for `len` input bytes and a caller's `max_values`.
fn value_budget(len: usize, max_values: usize) -> usize {
    max_values.min(FREE_VALUES + len / BYTES_PER_VALUE)
}

/// One AMF0 value. Objects and ECMA arrays keep their properties in wire order
/// (duplicates included) because order matters to some peers (onMetaData).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// IEEE-754 double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// String (short or long on the wire).
    String(String),
    /// Anonymous object.
    Object(Vec<(String, Value)>),
    /// Null.
    Null,
    /// Undefined.
    Undefined,
    /// Associative ("ECMA") array.
    EcmaArray(Vec<(String, Value)>),
    /// Dense array.
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch; the time zone field is kept as read
    /// (the spec says it should be 0 and ignored).
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Reserved time zone offset.
        time_zone: i16,
    },
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// A cursor over AMF0 bytes.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Items (values and property names) decoded so far, over every
    /// [`Decoder::decode`] call, and the most allowed.
    items: usize,
    max_items: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data` that refuses nesting deeper than `max_depth`
    /// and more than [`DEFAULT_MAX_VALUES`] items.
    pub fn new(data: &'a [u8], max_depth: usize) -> Self {
        Decoder {
            data,
            pos: 0,
            max_depth,
            items: 0,
            max_items: value_budget(data.len(), DEFAULT_MAX_VALUES),
        }
    }

    /// Refuses more than `max_values` items (values and property names) in
    /// all; the input-length bound of the module documentation still applies.
    pub fn max_values(mut self, max_values: usize) -> Self {
        self.max_items = value_budget(self.data.len(), max_values);
        self
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Value, Error> {
        self.value(0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(Error::Truncated("AMF0 value"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Error> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Error::Malformed("AMF0 string (not UTF-8)"))
    }

    fn short_string(&mut self) -> Result<String, Error> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    /// Accounts for `n` more decoded items.
    fn charge(&mut self, n: usize) -> Result<(), Error> {
        if n > self.max_items - self.items {
            return Err(Error::AmfTooManyValues(self.max_items));
        }
        self.items += n;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        self.charge(1)?;
        let marker = self.u8()?;
        match marker {
            NUMBER => Ok(Value::Number(self.f64()?)),
            BOOLEAN => Ok(Value::Boolean(self.u8()? != 0)),
            STRING => Ok(Value::String(self.short_string()?)),
            LONG_STRING => {
                let len = self.u32()? as usize;
                Ok(Value::String(self.utf8(len)?))
            }
            OBJECT => Ok(Value::Object(self.properties(depth)?)),
            NULL => Ok(Value::Null),
            UNDEFINED => Ok(Value::Undefined),
            ECMA_ARRAY => {
                // The count is advisory (encoders disagree on it); the object
                // end marker is what terminates the array.
                let _count = self.u32()?;
                Ok(Value::EcmaArray(self.properties(depth)?))
            }
            STRICT_ARRAY => {
                if depth >= self.max_depth {
                    return Err(Error::AmfTooDeep);
                }
                let count = self.u32()? as usize;
                // Every element takes at least one byte and one item: refuse
                // a count that cannot fit before reserving for it.
                if count > self.data.len() - self.pos {
                    return Err(Error::Truncated("AMF0 value"));
                }
                if count > self.max_items - self.items {
                    return Err(Error::AmfTooManyValues(self.max_items));
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::StrictArray(items))
            }
            DATE => {
                let millis = self.f64()?;
                let time_zone = self.u16()? as i16;
                Ok(Value::Date { millis, time_zone })
            }
            OBJECT_END => Err(Error::Malformed("AMF0 object end outside an object")),
            REFERENCE => Err(Error::Unsupported("AMF0 reference")),
            AVMPLUS => Err(Error::Unsupported("AMF3 value inside AMF0")),
            _ => Err(Error::Malformed("AMF0 type marker")),
        }
    }

    /// Properties up to and including the `00 00 09` terminator.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Error> {
        if depth >= self.max_depth {
            return Err(Error::AmfTooDeep);
        }
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.data.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            // The name counts too: a property is 56 bytes in memory.
            self.charge(1)?;
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }
}

/// Decodes every value in `data` (a command or script body), with at most
/// [`DEFAULT_MAX_VALUES`] items.
pub fn decode_all(data: &[u8], max_depth: usize) -> Result<Vec<Value>, Error> {
    decode_all_limited(data, max_depth, DEFAULT_MAX_VALUES)
}

/// [`decode_all`] with at most `max_values` items (see [`Decoder::max_values`]).
pub fn decode_all_limited(
    data: &[u8],
    max_depth: usize,
    max_values: usize,
) -> Result<Vec<Value>, Error> {
    let mut d = Decoder::new(data, max_depth).max_values(max_values);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.decode()?);
    }
    Ok(out)
}

/// Appends the encoding of `value` to `out`.
///
/// Fails only for what AMF0 cannot express: a property name longer than
/// 65535 bytes, or a string/array longer than 2^32-1.
pub fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match value {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, *b as u8]),
        Value::String(s) => {
            if let Ok(len) = u16::try_from(s.len()) {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
            } else {
                let len = u32::try_from(s.len()).map_err(|_| Error::Malformed("AMF0 string"))?;
                out.push(LONG_STRING);
                out.extend_from_slice(&len.to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Object(props) => {
            out.push(OBJECT);
            encode_properties(props, out)?;
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(props) => {
            let count = u32::try_from(props.len()).map_err(|_| Error::Malformed("ECMA array"))?;
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&count.to_be_bytes());
            encode_properties(props, out)?;
        }
        Value::StrictArray(items) => {
            let count = u32::try_from(items.len()).map_err(|_| Error::Malformed("array"))?;
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items {
                encode(item, out)?;
            }
        }
        Value::Date { millis, time_zone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
    }
    Ok(())
}

fn encode_properties(props: &[(String, Value)], out: &mut Vec<u8>) -> Result<(), Error> {
    for (key, value) in props {
        let len = u16::try_from(key.len()).map_err(|_| Error::Malformed("AMF0 property name"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        encode(value, out)?;
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
    Ok(())
}

/// Encodes a sequence of values (a command or script body).
pub fn encode_all(values: &[Value]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(bytes: &[u8]) -> Vec<Value> {
        let values = decode_all(bytes, 32).unwrap();
        let again = encode_all(&values).unwrap();
        assert_eq!(decode_all(&again, 32).unwrap(), values);
        values
    }

    #[test]
    fn scalars_roundtrip_byte_exact() {
        let v = vec![
            Value::Number(1.5),
            Value::Boolean(true),
            Value::string("connect"),
            Value::Null,
            Value::Undefined,
            Value::Date {
                millis: 1.7e12,
                time_zone: 0,
            },
        ];
        let bytes = encode_all(&v).unwrap();
        assert_eq!(decode_all(&bytes, 32).unwrap(), v);
        assert_eq!(encode_all(&decode_all(&bytes, 32).unwrap()).unwrap(), bytes);
    }

    #[test]
    fn ffmpeg_connect_body() {
        // The start of the connect command ffmpeg 5.1 sends: "connect", 1.0,
        // {app: "live", type: "nonprivate", ...}.
        let mut b = vec![0x02, 0x00, 0x07];
        b.extend_from_slice(b"connect");
        b.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        b.push(0x03);
        b.extend_from_slice(&[0x00, 0x03]);
        b.extend_from_slice(b"app");
        b.extend_from_slice(&[0x02, 0x00, 0x04]);
        b.extend_from_slice(b"live");
        b.extend_from_slice(&[0x00, 0x04]);
        b.extend_from_slice(b"type");
        b.extend_from_slice(&[0x02, 0x00, 0x0a]);
        b.extend_from_slice(b"nonprivate");
        b.extend_from_slice(&[0x00, 0x00, 0x09]);
        let v = roundtrip(&b);
        assert_eq!(v[0].as_str(), Some("connect"));
        assert_eq!(v[1].as_f64(), Some(1.0));
        assert_eq!(v[2].get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(encode_all(&v).unwrap(), b);
    }

    #[test]
    fn ecma_and_strict_arrays_and_long_string() {
        let long = "x".repeat(70_000);
        let v = vec![Value::EcmaArray(vec![
            ("duration".into(), Value::Number(0.0)),
            (
                "list".into(),
                Value::StrictArray(vec![Value::string("hvc1"), Value::string("av01")]),
            ),
            ("long".into(), Value::String(long.clone())),
            (
                "nested".into(),
                Value::object([("a", Value::Boolean(false))]),
            ),
        ])];
        let bytes = encode_all(&v).unwrap();
        assert!(bytes
            .windows(5)
            .any(|w| w == [LONG_STRING, 0, 1, 0x11, 0x70]));
        assert_eq!(roundtrip(&bytes), v);
    }

    #[test]
    fn ecma_count_is_advisory() {
        // Count says 5 but only one property is present.
        let b = [
            0x08, 0, 0, 0, 5, 0, 1, b'a', 0x05, 0, 0, 0x09, //
        ];
        let v = roundtrip(&b);
        assert_eq!(v, vec![Value::EcmaArray(vec![("a".into(), Value::Null)])]);
    }

    #[test]
    fn depth_limit() {
        let mut b = Vec::new();
        for _ in 0..40 {
            b.extend_from_slice(&[0x03, 0, 1, b'k']);
        }
        b.push(0x05);
        for _ in 0..40 {
            b.extend_from_slice(&[0, 0, 0x09]);
        }
        assert_eq!(decode_all(&b, 32), Err(Error::AmfTooDeep));
        assert!(decode_all(&b, 64).is_ok());
        let mut arrays = [0x0a, 0, 0, 0, 1].repeat(100);
        arrays.push(0x05);
        assert_eq!(decode_all(&arrays, 32), Err(Error::AmfTooDeep));
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // A strict array claiming 4 billion elements in 5 bytes.
        let b = [0x0a, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode_all(&b, 32), Err(Error::Truncated("AMF0 value")));
        let b = [0x0c, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert_eq!(decode_all(&b, 32), Err(Error::Truncated("AMF0 value")));
    }

    #[test]
    fn tiny_encodings_cannot_amplify() {
        // 1 MiB of 1-byte nulls in a strict array would decode to 32 MiB of
        // values.
        let n = 1 << 20;
        let mut nulls = vec![STRICT_ARRAY];
        nulls.extend_from_slice(&(n as u32).to_be_bytes());
        nulls.extend(std::iter::repeat_n(NULL, n));
        assert_eq!(
            decode_all(&nulls, 32),
            Err(Error::AmfTooManyValues(DEFAULT_MAX_VALUES))
        );
        // A caller's higher cap still meets the input-length bound: at most
        // one value per 4 bytes (after the first 64), 8 bytes of values per
        // input byte.
        let bound = FREE_VALUES + nulls.len() / BYTES_PER_VALUE;
        assert_eq!(
            decode_all_limited(&nulls, 32, usize::MAX),
            Err(Error::AmfTooManyValues(bound))
        );
        // The same without the array's count: top-level values, and object
        // properties (a name counts as an item too).
        let top = vec![NULL; 100_000];
        assert_eq!(
            decode_all(&top, 32),
            Err(Error::AmfTooManyValues(FREE_VALUES + 25_000))
        );
        let mut props = vec![OBJECT];
        props.extend([0, 0, UNDEFINED].repeat(100_000));
        props.extend_from_slice(&[0, 0, OBJECT_END]);
        assert_eq!(
            decode_all_limited(&props, 32, usize::MAX),
            Err(Error::AmfTooManyValues(FREE_VALUES + props.len() / 4))
        );
        // A count beyond the budget is refused before anything is reserved.
        let mut counted = vec![STRICT_ARRAY, 0, 1, 0, 0];
        counted.extend(vec![0u8; 70_000]);
        assert_eq!(
            decode_all_limited(&counted, 32, 1000),
            Err(Error::AmfTooManyValues(1000))
        );
        // Nested arrays count every level.
        let mut nested = [STRICT_ARRAY, 0, 0, 0, 1].repeat(20);
        nested.push(NULL);
        assert_eq!(
            decode_all_limited(&nested, 32, 20).unwrap_err(),
            Error::AmfTooManyValues(20)
        );
        assert!(decode_all_limited(&nested, 32, 21).is_ok());
        // The budget spans every value of a body.
        let mut d = Decoder::new(&top[..80], 32).max_values(50);
        for _ in 0..50 {
            assert_eq!(d.decode(), Ok(Value::Null));
        }
        assert_eq!(d.decode(), Err(Error::AmfTooManyValues(50)));
    }

    #[test]
    fn real_bodies_fit_the_value_budget() {
        // Short bodies of 1-byte values, and long arrays of numbers (9 bytes
        // each), as a keyframe index in onMetaData has them.
        let short = [NULL; FREE_VALUES];
        assert_eq!(decode_all(&short, 32).unwrap().len(), FREE_VALUES);
        let times = Value::StrictArray((0..50_000).map(|i| Value::Number(i as f64)).collect());
        let meta = encode_all(&[
            Value::string("onMetaData"),
            Value::EcmaArray(vec![
                ("stereo".into(), Value::Boolean(true)),
                ("keyframes".into(), Value::object([("times", times)])),
            ]),
        ])
        .unwrap();
        assert_eq!(roundtrip(&meta).len(), 2);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(decode_all(&[0x09], 32).is_err());
        assert!(decode_all(&[0x07, 0, 1], 32).is_err());
        assert!(decode_all(&[0x11, 0x01], 32).is_err());
        assert!(decode_all(&[0x20], 32).is_err());
        assert!(decode_all(&[0x02, 0, 2, 0xff, 0xfe], 32).is_err());
        assert!(decode_all(&[0x03, 0, 1, b'a'], 32).is_err());
        assert!(decode_all(&[0x00, 1, 2], 32).is_err());
    }

    #[test]
    fn encode_rejects_oversized_key() {
        let v = Value::object([("k".repeat(70_000), Value::Null)]);
        assert!(encode_all(&[v]).is_err());
    }
}
