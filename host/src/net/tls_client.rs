//! TLS for the host's outbound connections (`RILL_CONNECT_TLS`): servers
//! are verified against the system's root certificates and, when set,
//! `tls_client.ca_file` (a private CA, a test's own).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Largest CA file read.
const MAX_CA_FILE: u64 = 4 << 20;

/// The client configuration: system roots plus `ca_file`. An unreadable
/// `ca_file` is an error; a system without roots is not (then only
/// `ca_file` is trusted).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "TLS client: system root certificates");
    if let Some(path) = ca_file {
        let text = crate::config::read_named_file(path, MAX_CA_FILE)?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no PEM certificate in {}", path.display()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Speaks TLS over `tcp` to `addr` (`host:port`: the host part is the
/// name the certificate must carry).
pub async fn connect(
    config: Arc<ClientConfig>,
    addr: &str,
    tcp: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(config).connect(name, tcp).await
}
