//! The one place rustls client settings are made, for every TLS connection mailferry opens
//! itself (IMAP, PostgreSQL; reqwest builds its own from the same webpki roots): the ring
//! provider, webpki roots plus an optional extra CA file, or, where the operator asked for it,
//! no certificate check at all (handshake signatures are still verified, so the session is at
//! least bound to the certificate shown).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verify<'a> {
    /// Against the webpki roots plus the PEM certificates of an optional file. `label` names the
    /// setting in errors (`CA file`, `sslrootcert`).
    Roots {
        extra: Option<&'a Path>,
        label: &'a str,
    },
    /// Not at all (IMAP `insecure = true`, PostgreSQL `sslmode=require`).
    Nothing,
}

/// Client settings for `verify`. Errors are reasons naming the file; the caller adds context.
pub(crate) fn client_config(verify: Verify<'_>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth(),
        Verify::Roots { extra, label } => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = extra {
                add_pem_roots(&mut roots, path, label)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path, label: &str) -> Result<(), String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read {label} {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{label} {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{label} {}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!(
            "{label} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(())
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
