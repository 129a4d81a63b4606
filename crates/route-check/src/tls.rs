//! TLS with rustls: the client configuration, certificate verification kept apart
//! from the handshake, and what a certificate chain says.
//!
//! The handshake always completes, whatever the certificate, so that an expired
//! certificate, a wrong name or Traefik's default certificate can be reported with
//! its subject and dates. Verification against the roots (the system's or `--ca`)
//! runs on the chain the server sent, right after the handshake, and its verdict is
//! part of the record: a failure is a critical finding unless `--insecure` was asked
//! for. Handshake signatures are still checked with the server's key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use homelab_core::{Error, Exit};

/// The subject Traefik gives the self-signed certificate it serves when no
/// certificate matches the SNI (`pkg/tls/generate`).
pub const TRAEFIK_DEFAULT_CN: &str = "TRAEFIK DEFAULT CERT";

/// Where trust comes from.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's roots (`/etc/ssl/certs`, through rustls-native-certs).
    System,
    /// The certificates of a PEM file (`--ca FILE`).
    File(std::path::PathBuf),
}

/// The TLS side of every probe: one client configuration and one verifier.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    /// The verifier, or why there is none (no roots could be loaded).
    verifier: Result<Arc<WebPkiServerVerifier>, String>,
    /// The trusted roots, for the Traefik API client.
    pub roots: Arc<Vec<CertificateDer<'static>>>,
}

impl Tls {
    /// Loads the roots and builds the configuration. A `--ca` file that cannot be
    /// read or holds no certificate is a fatal error; a system without roots is not
    /// (every verification then says so).
    pub fn new(trust: &Trust) -> Result<Tls, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let mut kept = Vec::new();
        let verifier = match trust {
            Trust::File(path) => {
                let certs = read_pem_certs(path)?;
                for c in certs {
                    roots.add(c.clone()).map_err(|e| {
                        Error::data(format!(
                            "--ca {}: a certificate is not usable as a root: {e}",
                            path.display()
                        ))
                    })?;
                    kept.push(c);
                }
                build_verifier(roots, &provider)
            }
            Trust::System => {
                let found = rustls_native_certs::load_native_certs();
                kept = found.certs.clone();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    Err("no trusted root certificates on this system: install ca-certificates or pass --ca FILE".to_string())
                } else {
                    build_verifier(roots, &provider)
                }
            }
        };
        let accept = Arc::new(AcceptThenVerify {
            provider: Arc::clone(&provider),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::bug(format!("building the TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(accept)
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            verifier,
            roots: Arc::new(kept),
        })
    }

    /// Verifies a chain as the server sent it (leaf first) for `name`, now.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'static>,
    ) -> Result<(), VerifyFailure> {
        let other = |message: String| VerifyFailure {
            kind: FailureKind::Other,
            message,
        };
        let verifier = self.verifier.as_ref().map_err(|e| other(e.clone()))?;
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| other("the server sent no certificate".into()))?;
        verifier
            .verify_server_cert(leaf, rest, name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| VerifyFailure {
                kind: failure_kind(&e),
                message: describe_verify_error(&e),
            })
    }
}

fn build_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("cannot verify certificates: {e}"))
}

/// Every certificate of a PEM file; fatal when there is none.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("--ca {}", path.display()), e))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(Error::new(
            Exit::DataErr,
            format!("--ca {}: no PEM certificate in the file", path.display()),
        )
        .hint("give a file with -----BEGIN CERTIFICATE----- blocks")),
        Err(e) => Err(Error::data(format!(
            "--ca {}: not a PEM file: {e}",
            path.display()
        ))),
    }
}

/// Why verification failed: expiry and names are reported by their own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Expired,
    /// notBefore is still to come: not forgiven by `--insecure` either.
    NotValidYet,
    WrongName,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub kind: FailureKind,
    pub message: String,
}

fn failure_kind(e: &rustls::Error) -> FailureKind {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => FailureKind::Expired,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => FailureKind::NotValidYet,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => FailureKind::WrongName,
        _ => FailureKind::Other,
    }
}

/// A verification error in words a person acts on.
pub fn describe_verify_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate has expired".into(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate is not valid for this host name".into()
            }
            CertificateError::UnknownIssuer => {
                "certificate is not signed by a trusted root (unknown issuer; pass --ca FILE for a private CA)".into()
            }
            CertificateError::BadSignature => "certificate has a bad signature".into(),
            CertificateError::Revoked => "certificate is revoked".into(),
            other => format!("certificate is invalid: {other:?}"),
        },
        other => format!("certificate is invalid: {other}"),
    }
}

/// Accepts any certificate during the handshake (verification happens afterwards,
/// see the module doc) but checks the handshake signatures for real.
#[derive(Debug)]
struct AcceptThenVerify {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptThenVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What one certificate says.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub subject: String,
    pub common_name: Option<String>,
    pub issuer: String,
    pub sans: Vec<String>,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// Parses one DER certificate; `None` when it is not X.509.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        sans.push(std::net::Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        sans.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(CertInfo {
        subject: cert.subject().to_string(),
        common_name,
        issuer: cert.issuer().to_string(),
        sans,
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Whether the leaf certificate is valid for `name`, decided by rustls's own
/// name check (webpki: RFC 6125 as browsers apply it; a DNS SAN that looks like an
/// IP address, a wildcard over a single label such as `*.test` and a SAN written
/// with a trailing dot name nothing). The subject's CN is not used, as browsers and
/// rustls do not use it either. A certificate rustls cannot parse names nothing.
pub fn name_valid(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    rustls::server::ParsedCertificate::try_from(leaf)
        .and_then(|c| rustls::client::verify_server_name(&c, name))
        .is_ok()
}

/// `TLS 1.3` for rustls's `TLSv1_3`: blackbox_exporter's spelling.
pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        rustls::ProtocolVersion::TLSv1_1 => "TLS 1.1".into(),
        rustls::ProtocolVersion::TLSv1_0 => "TLS 1.0".into(),
        _ => "unknown".into(),
    }
}

/// The IANA (and Go) name of a cipher suite: rustls's `TLS13_AES_128_GCM_SHA256`
/// is `TLS_AES_128_GCM_SHA256`.
pub fn cipher_name(s: rustls::CipherSuite) -> String {
    let name = s.as_str().map(str::to_string).unwrap_or_else(|| format!("{s:?}"));
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_for(sans: Vec<rcgen::SanType>) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().clone()
    }

    fn dns(s: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(s.try_into().unwrap())
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn names_match_as_rustls_decides() {
        let c = leaf_for(vec![
            dns("grafana.example.com"),
            dns("*.lab.example.com"),
            rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap()),
        ]);
        assert!(name_valid(&c, &name("Grafana.Example.com")));
        assert!(name_valid(&c, &name("n8n.lab.example.com")));
        assert!(!name_valid(&c, &name("lab.example.com")));
        assert!(!name_valid(&c, &name("a.b.lab.example.com")));
        assert!(!name_valid(&c, &name("example.com")));
        assert!(name_valid(&c, &name("10.0.0.1")));
        // What a looser match accepted and rustls does not: a wildcard over one
        // label, a SAN with a trailing dot, an IP address written as a DNS name.
        assert!(!name_valid(&leaf_for(vec![dns("*.test")]), &name("x.test")));
        assert!(!name_valid(
            &leaf_for(vec![dns("probe.test.")]),
            &name("probe.test")
        ));
        assert!(!name_valid(&leaf_for(vec![dns("10.0.0.2")]), &name("10.0.0.2")));
        assert!(!name_valid(&leaf_for(vec![]), &name("example.com")));
        assert!(!name_valid(&CertificateDer::from(vec![1, 2, 3]), &name("a.x")));
    }

    #[test]
    fn names_of_versions_and_suites() {
        assert_eq!(version_name(rustls::ProtocolVersion::TLSv1_3), "TLS 1.3");
        assert_eq!(
            cipher_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(cert_info(b"not a certificate").is_none());
        assert!(cert_info(&[]).is_none());
    }
}
