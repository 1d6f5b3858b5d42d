//! HTTPS: a TLS listener (rustls, ring provider) in front of the same router
//! as plain HTTP.
//!
//! Each accepted TCP connection gets its handshake in a task of its own,
//! bounded by [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds
//! up the accept loop; a failed handshake closes that connection only. The
//! completed TLS streams go to `axum::serve` through its [`Listener`] trait,
//! so HTTPS connections are served, upgraded (wss) and shut down exactly as
//! plain ones. ALPN offers `http/1.1` only (the server speaks HTTP/1.1).
//!
//! The certificate lives in an [`ArcSwap`]: a config reload loads the files
//! again and swaps it; new connections get the new one, open ones keep
//! theirs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::ServerConfig;
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::{Error as TlsError, InconsistentKeys};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, TlsConfig};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads `http.tls.cert` and `http.tls.key` into a server config: both PEM
/// files read and parsed, the key usable and matching the certificate.
/// Errors name the key (`http.tls.cert`, `http.tls.key`) and the file.
pub fn load(tls: &TlsConfig) -> Result<Arc<ServerConfig>, ConfigError> {
    let Some((cert_path, key_path)) = tls.files() else {
        return Err(ConfigError::new(
            "http.tls",
            "cert and key must both be set",
        ));
    };
    let cert_err = |m: String| ConfigError::file("http.tls.cert", m);
    let key_err = |m: String| ConfigError::file("http.tls.key", m);

    let text = read(cert_path).map_err(cert_err)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(pem_error(cert_path, e)))?;
    if certs.is_empty() {
        return Err(cert_err(format!(
            "no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in {}",
            cert_path.display()
        )));
    }
    let text = read(key_path).map_err(key_err)?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        pem::Error::NoItemsFound => key_err(format!(
            "no PEM private key (PKCS#8 \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \
             \"EC PRIVATE KEY\"; encrypted keys are not supported) in {}",
            key_path.display()
        )),
        e => key_err(pem_error(key_path, e)),
    })?;

    let provider = Arc::new(ring::default_provider());
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        key_err(format!(
            "unusable private key in {}: {e}",
            key_path.display()
        ))
    })?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(key_err(format!(
                "the key in {} does not belong to the first certificate in {}",
                key_path.display(),
                cert_path.display()
            )))
        }
        Err(e) => {
            return Err(cert_err(format!(
                "invalid certificate in {}: {e}",
                cert_path.display()
            )))
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("http.tls", e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Largest certificate chain or key file (a chain of a few certificates
/// is a few KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::config::read_named_file(path, MAX_PEM_FILE)
}

fn pem_error(path: &Path, e: pem::Error) -> String {
    let what = match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "truncated: no \"-----END {}-----\" line",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("bad line {:?}", String::from_utf8_lossy(&line))
        }
        e => e.to_string(),
    };
    format!("invalid PEM in {}: {what}", path.display())
}

/// The running HTTPS certificate and handshake counts, shared by the
/// listener, the config reload and the metrics.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    config: ArcSwap<ServerConfig>,
    handshakes: AtomicU64,
    failures: AtomicU64,
}

impl Tls {
    /// Loads the certificate for a first time.
    pub fn new(tls: &TlsConfig) -> Result<Tls, ConfigError> {
        Ok(Tls {
            inner: Arc::new(Inner {
                config: ArcSwap::new(load(tls)?),
                handshakes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        })
    }

    /// Swaps in a certificate loaded by [`load`]; new connections use it.
    pub fn set(&self, config: Arc<ServerConfig>) {
        self.inner.config.store(config);
    }

    /// The TLS handshake of a connection to a plugin's listener
    /// (`RILL_LISTEN_TLS`): the same certificate as HTTPS, no ALPN (RTMPS
    /// and the like negotiate none), the same timeout. `None` when it
    /// failed (counted, logged at debug).
    pub async fn accept_for_plugin(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let mut config = (*self.inner.config.load_full()).clone();
        config.alpn_protocols.clear();
        handshake(TlsAcceptor::from(Arc::new(config)), tcp, peer, self.clone())
            .await
            .map(|(s, _)| s)
    }

    /// Handshakes completed and failed (including timeouts) so far.
    pub fn handshake_counts(&self) -> (u64, u64) {
        (
            self.inner.handshakes.load(Ordering::Relaxed),
            self.inner.failures.load(Ordering::Relaxed),
        )
    }
}

/// The HTTPS listener's preparation: the TLS handshake (with the
/// current certificate, under [`HANDSHAKE_TIMEOUT`]).
pub struct Handshake(pub Tls);

impl super::prepare::Prepare for Handshake {
    type Io = TlsStream<TcpStream>;
    fn prepare(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        slot: Option<crate::admission::ConnSlot>,
    ) -> impl std::future::Future<Output = Option<super::prepare::Counted<Self::Io>>> + Send + 'static
    {
        let acceptor = TlsAcceptor::from(self.0.inner.config.load_full());
        let tls = self.0.clone();
        async move {
            let (io, _) = handshake(acceptor, tcp, peer, tls).await?;
            Some(super::prepare::Counted { io, slot })
        }
    }
}

/// Accepts TCP connections and hands out those whose TLS handshake
/// completed.
pub type TlsListener = super::prepare::Preparing<Handshake>;

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Tls,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    let why = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            tls.inner.handshakes.fetch_add(1, Ordering::Relaxed);
            return Some((stream, peer));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    tls.inner.failures.fetch_add(1, Ordering::Relaxed);
    // Scanners and plain-HTTP clients do this all day: not worth a warning.
    tracing::debug!(%peer, "TLS handshake failed: {why}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn config(cert: &Path, key: &Path) -> TlsConfig {
        TlsConfig {
            cert: Some(cert.into()),
            key: Some(key.into()),
            ..Default::default()
        }
    }

    fn err(cert: &Path, key: &Path) -> ConfigError {
        match load(&config(cert, key)) {
            Ok(_) => panic!("loaded {cert:?} {key:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn loads_a_matching_pair_with_alpn() {
        let f = Files::new();
        let (cert, key) = self_signed();
        let c = load(&config(&f.write("c.pem", &cert), &f.write("k.pem", &key))).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// Keys as `openssl genrsa -traditional` (RSA, PKCS#1) and `openssl
    /// ecparam -genkey -noout` (SEC1) write them, with their self-signed
    /// certificates (test-only keys in host/tests/data).
    #[test]
    fn openssl_rsa_and_sec1_keys_load() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for (cert, key, label) in [
            ("rsa.crt", "rsa-pkcs1.key", "RSA PRIVATE KEY"),
            ("ec.crt", "ec-sec1.key", "EC PRIVATE KEY"),
        ] {
            let key = data.join(key);
            assert!(std::fs::read_to_string(&key).unwrap().contains(label));
            load(&config(&data.join(cert), &key)).unwrap_or_else(|e| panic!("{e}"));
        }
        // A certificate with the other one's key.
        let e = err(&data.join("rsa.crt"), &data.join("ec-sec1.key"));
        assert_eq!(e.path, "http.tls.key");
        assert!(e.message.contains("does not belong"), "{e}");
    }

    #[test]
    fn missing_files_name_key_and_path() {
        let f = Files::new();
        let (cert, key) = self_signed();
        let c = f.write("c.pem", &cert);
        let k = f.write("k.pem", &key);
        let nope = f.dir.path().join("nope.pem");
        let e = err(&nope, &k);
        assert_eq!(e.path, "http.tls.cert");
        assert!(
            e.message.contains("cannot read") && e.message.contains("nope.pem"),
            "{e}"
        );
        let e = err(&c, &nope);
        assert_eq!(e.path, "http.tls.key");
        assert!(
            e.message.contains("cannot read") && e.message.contains("nope.pem"),
            "{e}"
        );
        // A directory is unreadable as a file.
        let e = err(f.dir.path(), &k);
        assert_eq!(e.path, "http.tls.cert");
    }

    #[test]
    fn bad_pem_is_refused_with_the_reason() {
        let f = Files::new();
        let (cert, key) = self_signed();
        let c = f.write("c.pem", &cert);
        let k = f.write("k.pem", &key);

        let e = err(&f.write("empty.pem", ""), &k);
        assert_eq!(e.path, "http.tls.cert");
        assert!(e.message.contains("no PEM certificate"), "{e}");

        // The two files swapped: the key is no certificate, and vice versa.
        let e = err(&k, &c);
        assert_eq!(e.path, "http.tls.cert");
        assert!(e.message.contains("no PEM certificate"), "{e}");
        let e = err(&c, &c);
        assert_eq!(e.path, "http.tls.key");
        assert!(e.message.contains("no PEM private key"), "{e}");

        // Cut in the middle.
        let e = err(&f.write("cut.pem", &cert[..cert.len() / 2]), &k);
        assert_eq!(e.path, "http.tls.cert");
        assert!(e.message.contains("truncated"), "{e}");
        assert!(e.message.contains("-----END CERTIFICATE-----"), "{e}");

        // Base64 damaged.
        let bad = cert.replacen("MII", "M!I", 1);
        let e = err(&f.write("bad64.pem", &bad), &k);
        assert_eq!(e.path, "http.tls.cert");
        assert!(e.message.contains("invalid PEM"), "{e}");

        // Well-formed PEM holding garbage DER.
        let e = err(
            &f.write(
                "der.pem",
                "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
            ),
            &k,
        );
        assert_eq!(e.path, "http.tls.cert");
        assert!(e.message.contains("invalid certificate"), "{e}");
        let e = err(
            &c,
            &f.write(
                "kder.pem",
                "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n",
            ),
        );
        assert_eq!(e.path, "http.tls.key");
        assert!(e.message.contains("unusable private key"), "{e}");
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let f = Files::new();
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let e = err(&f.write("c.pem", &cert), &f.write("k.pem", &other_key));
        assert_eq!(e.path, "http.tls.key");
        assert!(e.message.contains("does not belong"), "{e}");
    }
}
