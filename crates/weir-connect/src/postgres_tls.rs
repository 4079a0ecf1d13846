//! TLS for every PostgreSQL connection weir opens (batch sources and sinks, stream sinks and lookups, the metadata
//! store), with libpq's `sslmode` and `sslrootcert` in the connection URL, since managed PostgreSQL (RDS, Cloud SQL,
//! Azure) requires TLS:
//!
//! | `sslmode`     | TLS                       | the server's certificate                                         |
//! |---------------|---------------------------|------------------------------------------------------------------|
//! | `disable`     | never                     | -                                                                |
//! | `prefer`      | when the server offers it | not checked (libpq's default, and weir's)                        |
//! | `require`     | always                    | not checked, unless `sslrootcert` is given: then as `verify-ca`  |
//! | `verify-ca`   | always                    | signed by `sslrootcert` (or the system's roots)                  |
//! | `verify-full` | always                    | signed, and issued for the host name in the URL                  |
//!
//! tokio-postgres reads only `disable`, `prefer` and `require`, so weir takes both settings off the URL and builds
//! the rustls configuration itself.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use weir_core::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS settings of one connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// A PEM file of the certificates that may sign the server's.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` off a `postgres://` URL; returns the URL tokio-postgres reads (with
/// `sslmode` set to what it understands) and the settings.
pub fn split_url(url: &str) -> Result<(String, TlsSettings)> {
    let (url, settings) = take_tls_params(url)?;
    let driver_mode = match settings.mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    };
    let Ok(mut parsed) = url::Url::parse(&url) else { return Ok((url, settings)) };
    parsed.query_pairs_mut().append_pair("sslmode", driver_mode);
    Ok((parsed.to_string(), settings))
}

/// Takes `sslmode` and `sslrootcert` off a connection URL (PostgreSQL or MySQL: weir spells them libpq's way for
/// both); returns the rest of the URL and the settings (`prefer` when not given).
pub fn take_tls_params(url: &str) -> Result<(String, TlsSettings)> {
    let bad = |what: String| Error::config(Default::default(), format!("database connection: {what}"));
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL (a key=value string): tokio-postgres reads it as it is.
        return Ok((url.to_string(), TlsSettings { mode: SslMode::Prefer, root_cert: None }));
    };
    let mut settings = TlsSettings { mode: SslMode::Prefer, root_cert: None };
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                settings.mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), settings))
}

/// Makes ring rustls' process-wide provider, once: libraries that build their own rustls configuration (the MySQL
/// driver) need one, and both of rustls' providers are compiled in.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The rustls configuration for `settings` (not called for `disable`).
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::engine("postgres TLS", e))?;
    let checks = match (settings.mode, &settings.root_cert) {
        (SslMode::VerifyFull, _) => Check::ChainAndName,
        (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
        (SslMode::Require | SslMode::Prefer | SslMode::Disable, _) => Check::Nothing,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match checks {
        Check::Nothing => Arc::new(AnyCertificate { provider }),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(roots(settings)?);
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::config(Default::default(), format!("postgres TLS: {e}")))?;
            Arc::new(Verified { webpki, check_name: checks == Check::ChainAndName })
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The certificates of `sslrootcert`, or the system's.
fn roots(settings: &TlsSettings) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &settings.root_cert {
        Some(file) => {
            let unreadable =
                |e: String| Error::config(Default::default(), format!("postgres sslrootcert {}: {e}", file.display()));
            let certs = CertificateDer::pem_file_iter(file).map_err(|e| unreadable(e.to_string()))?;
            for cert in certs {
                roots.add(cert.map_err(|e| unreadable(e.to_string()))?).map_err(|e| unreadable(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(unreadable("no certificate in the file".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert); // the system's store may hold a certificate rustls cannot read
            }
        }
    }
    Ok(roots)
}

/// `verify-ca` and `verify-full`: the chain must lead to a root; for `verify-ca` the host name is not compared.
#[derive(Debug)]
struct Verified {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: the connection is encrypted, and whoever answers is trusted
/// (libpq's behaviour; the handshake's signatures are still checked).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_off_the_url() {
        let (url, s) =
            split_url("postgres://u:p@db.example.com:5432/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem&x=1")
                .unwrap();
        assert_eq!(s, TlsSettings { mode: SslMode::VerifyFull, root_cert: Some("/etc/ca.pem".into()) });
        assert!(url.contains("x=1") && url.contains("sslmode=require") && !url.contains("ca.pem"), "{url}");
        let (url, s) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(s.mode, SslMode::Prefer);
        assert!(url.ends_with("/db?sslmode=prefer"), "{url}");
        assert!(split_url("postgres://u@h/db?sslmode=verify").unwrap_err().to_string().contains("verify-full"));
    }
}
