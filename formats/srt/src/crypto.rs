//! SRT encryption as libsrt does it (HaiCrypt): a passphrase and a salt
//! derive the key-encrypting key (PBKDF2-HMAC-SHA1, 2048 rounds, the salt's
//! last 8 bytes), which wraps the stream encrypting keys (RFC 3394) carried
//! in the key material message (KMREQ/KMRSP); payloads are AES-CTR with an
//! IV built from the salt and the packet's sequence number.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_kw::{KekAes128, KekAes192, KekAes256};

use crate::seq::Seq;
use crate::Error;

/// The longest key material message accepted (two 32-byte keys, salt and
/// header need 104 bytes).
pub const MAX_KM_LEN: usize = 128;
const SIGN: [u8; 2] = [0x20, 0x29];
const CIPHER_AES_CTR: u8 = 2;
const SALT_LEN: usize = 16;
const PBKDF2_ROUNDS: u32 = 2048;

/// Shortest and longest passphrase libsrt accepts.
pub const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;

/// Which keys a KM message carries, and which key a data packet used.
pub mod kk {
    /// The even key.
    pub const EVEN: u8 = 1;
    /// The odd key.
    pub const ODD: u8 = 2;
    /// Both (a key refresh announces the next key).
    pub const BOTH: u8 = 3;
}

/// A parsed key material message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Which keys are present.
    pub kk: u8,
    /// The salt.
    pub salt: [u8; SALT_LEN],
    /// Key length in bytes: 16, 24 or 32.
    pub key_len: usize,
    /// The wrapped keys (8 + key_len × count bytes).
    pub wrapped: Vec<u8>,
}

impl KeyMaterial {
    /// Parses a KM message.
    pub fn parse(b: &[u8]) -> Result<KeyMaterial, Error> {
        if b.len() < 16 + SALT_LEN || b.len() > MAX_KM_LEN {
            return Err(Error::Malformed("key material length"));
        }
        if b[0] != 0x12 || b[1..3] != SIGN {
            return Err(Error::Malformed("key material signature"));
        }
        let kk = b[3] & 3;
        if kk == 0 {
            return Err(Error::Malformed("key material without keys"));
        }
        if b[8] != CIPHER_AES_CTR {
            return Err(Error::Unsupported("cipher other than AES-CTR"));
        }
        if usize::from(b[14]) * 4 != SALT_LEN {
            return Err(Error::Unsupported("salt length other than 16"));
        }
        let key_len = usize::from(b[15]) * 4;
        if ![16, 24, 32].contains(&key_len) {
            return Err(Error::Malformed("key length"));
        }
        let keys = if kk == kk::BOTH { 2 } else { 1 };
        let wrapped = &b[16 + SALT_LEN..];
        if wrapped.len() != 8 + key_len * keys {
            return Err(Error::Malformed("wrapped key length"));
        }
        let mut salt = [0; SALT_LEN];
        salt.copy_from_slice(&b[16..16 + SALT_LEN]);
        Ok(KeyMaterial {
            kk,
            salt,
            key_len,
            wrapped: wrapped.to_vec(),
        })
    }

    /// The message bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0x12, SIGN[0], SIGN[1], self.kk & 3, 0, 0, 0, 0];
        v.extend_from_slice(&[CIPHER_AES_CTR, 0, 2, 0, 0, 0, 4, (self.key_len / 4) as u8]);
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.wrapped);
        v
    }

    /// Unwraps the keys with `passphrase`: (even, odd), either may be absent.
    /// A wrong passphrase fails the integrity check.
    pub fn unwrap(&self, passphrase: &str) -> Result<Keys, Error> {
        let kek = derive_kek(passphrase, &self.salt, self.key_len);
        let plain = unwrap_keys(&kek, &self.wrapped).ok_or(Error::BadSecret)?;
        let mut keys = Keys {
            salt: self.salt,
            even: None,
            odd: None,
        };
        let mut at = 0;
        for (flag, slot) in [(kk::EVEN, &mut keys.even), (kk::ODD, &mut keys.odd)] {
            if self.kk & flag != 0 {
                *slot = Some(plain[at..at + self.key_len].to_vec());
                at += self.key_len;
            }
        }
        Ok(keys)
    }

    /// Key material for a new even key of `key_len` bytes and a new salt
    /// (what a caller sends).
    pub fn generate(passphrase: &str, key_len: usize) -> Result<(KeyMaterial, Keys), Error> {
        if ![16, 24, 32].contains(&key_len) {
            return Err(Error::Malformed("key length"));
        }
        let mut salt = [0; SALT_LEN];
        let mut key = vec![0; key_len];
        getrandom::getrandom(&mut salt).map_err(|_| Error::Unsupported("no random source"))?;
        getrandom::getrandom(&mut key).map_err(|_| Error::Unsupported("no random source"))?;
        let kek = derive_kek(passphrase, &salt, key_len);
        let wrapped = wrap_keys(&kek, &key).ok_or(Error::Malformed("key wrap"))?;
        Ok((
            KeyMaterial {
                kk: kk::EVEN,
                salt,
                key_len,
                wrapped,
            },
            Keys {
                salt,
                even: Some(key),
                odd: None,
            },
        ))
    }
}

fn derive_kek(passphrase: &str, salt: &[u8; SALT_LEN], len: usize) -> Vec<u8> {
    let mut kek = vec![0; len];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
        passphrase.as_bytes(),
        &salt[SALT_LEN - 8..],
        PBKDF2_ROUNDS,
        &mut kek,
    );
    kek
}

fn unwrap_keys(kek: &[u8], wrapped: &[u8]) -> Option<Vec<u8>> {
    match kek.len() {
        16 => KekAes128::new(kek.into()).unwrap_vec(wrapped).ok(),
        24 => KekAes192::new(kek.into()).unwrap_vec(wrapped).ok(),
        32 => KekAes256::new(kek.into()).unwrap_vec(wrapped).ok(),
        _ => None,
    }
}

fn wrap_keys(kek: &[u8], keys: &[u8]) -> Option<Vec<u8>> {
    match kek.len() {
        16 => KekAes128::new(kek.into()).wrap_vec(keys).ok(),
        24 => KekAes192::new(kek.into()).wrap_vec(keys).ok(),
        32 => KekAes256::new(kek.into()).wrap_vec(keys).ok(),
        _ => None,
    }
}

/// The stream keys of a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    salt: [u8; SALT_LEN],
    even: Option<Vec<u8>>,
    odd: Option<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Takes the keys a refresh brings (a present key replaces the old one).
    pub fn update(&mut self, new: Keys) {
        self.salt = new.salt;
        if new.even.is_some() {
            self.even = new.even;
        }
        if new.odd.is_some() {
            self.odd = new.odd;
        }
    }

    /// Encrypts or decrypts (the same in CTR mode) a payload in place with
    /// the key `kk` names. False if that key is missing.
    pub fn apply(&self, kk: u8, seq: Seq, payload: &mut [u8]) -> bool {
        let key = match kk {
            kk::EVEN => self.even.as_deref(),
            kk::ODD => self.odd.as_deref(),
            _ => None,
        };
        let Some(key) = key else { return false };
        let mut iv = [0u8; 16];
        iv[10..14].copy_from_slice(&seq.0.to_be_bytes());
        for (b, s) in iv.iter_mut().zip(&self.salt[..14]) {
            *b ^= s;
        }
        type Ctr<C> = ctr::Ctr128BE<C>;
        match key.len() {
            16 => Ctr::<aes::Aes128>::new(key.into(), &iv.into()).apply_keystream(payload),
            24 => Ctr::<aes::Aes192>::new(key.into(), &iv.into()).apply_keystream(payload),
            32 => Ctr::<aes::Aes256>::new(key.into(), &iv.into()).apply_keystream(payload),
            _ => return false,
        }
        true
    }

    /// The key flag to put on packets this side encrypts.
    pub fn send_kk(&self) -> u8 {
        if self.even.is_some() {
            kk::EVEN
        } else {
            kk::ODD
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_unwrap_and_apply() {
        for len in [16, 24, 32] {
            let (km, keys) = KeyMaterial::generate("a secret passphrase", len).unwrap();
            let parsed = KeyMaterial::parse(&km.to_vec()).unwrap();
            assert_eq!(parsed, km);
            let back = parsed.unwrap("a secret passphrase").unwrap();
            assert_eq!(back, keys);
            assert_eq!(
                parsed.unwrap("another passphrase").unwrap_err(),
                Error::BadSecret
            );
            let mut data = b"0123456789abcdef0123456789".to_vec();
            assert!(keys.apply(kk::EVEN, Seq(7), &mut data));
            assert_ne!(&data, b"0123456789abcdef0123456789");
            assert!(back.apply(kk::EVEN, Seq(7), &mut data));
            assert_eq!(&data, b"0123456789abcdef0123456789");
            assert!(!keys.apply(kk::ODD, Seq(7), &mut data));
        }
    }

    /// RFC 3394 §4.1's vector, so the wrap is the standard one libsrt uses.
    #[test]
    fn key_wrap_vector() {
        let kek: Vec<u8> = (0..16).collect();
        let key: Vec<u8> = (0..16).map(|i| i * 0x11).collect();
        let w = wrap_keys(&kek, &key).unwrap();
        assert_eq!(
            w,
            [
                0x1F, 0xA6, 0x8B, 0x0A, 0x81, 0x12, 0xB4, 0x47, 0xAE, 0xF3, 0x4B, 0xD8, 0xFB, 0x5A,
                0x7B, 0x82, 0x9D, 0x3E, 0x86, 0x23, 0x71, 0xD2, 0xCF, 0xE5
            ]
        );
    }
}
