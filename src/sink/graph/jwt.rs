//! Certificate client assertions (docs/graph-facts.md, section 1): a JWT signed with the app certificate's RSA key,
//! sent instead of a client secret.
//!
//! The header names the certificate by thumbprint: `x5t#S256` (SHA-256 of the DER) with PS256 as
//! current Microsoft docs say, or `x5t` (SHA-1) with RS256 as older docs and most samples do; which
//! one a tenant accepts is unknown 7, so it is a setting. Claims: `aud` = token endpoint, `iss` =
//! `sub` = client id, fresh `jti`, `nbf`/`iat` = now, `exp` = now + 10 minutes.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::GraphError;
use super::settings::AssertionAlg;
use crate::secret::Secret;

/// Lifetime of one assertion. Microsoft accepts 5..10 minutes; a fresh one is made per token request.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A loaded certificate credential: the key and both thumbprints, ready to sign assertions.
#[derive(Clone)]
pub(crate) struct CertificateSigner {
    key: EncodingKey,
    /// base64url SHA-1 of the certificate DER (`x5t`).
    x5t: String,
    /// base64url SHA-256 of the certificate DER (`x5t#S256`).
    x5t_s256: String,
    alg: AssertionAlg,
    path: PathBuf,
}

impl std::fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSigner")
            .field("path", &self.path)
            .field("x5t", &self.x5t)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

impl CertificateSigner {
    /// Reads one PEM file holding the certificate (first `CERTIFICATE` block) and an unencrypted
    /// RSA private key (PKCS#1 or PKCS#8).
    pub(crate) fn from_pem_file(
        path: &Path,
        alg: AssertionAlg,
    ) -> Result<CertificateSigner, GraphError> {
        let bytes = std::fs::read(path).map_err(|e| cred_err(path, format!("cannot read: {e}")))?;
        Self::from_pem(&bytes, path, alg)
    }

    pub(crate) fn from_pem(
        bytes: &[u8],
        path: &Path,
        alg: AssertionAlg,
    ) -> Result<CertificateSigner, GraphError> {
        let mut cert: Option<Vec<u8>> = None;
        let mut key: Option<EncodingKey> = None;
        // Every section in file order, whatever its kind; the loop picks what it needs.
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
            let (kind, der) = item.map_err(|e| cred_err(path, format!("not valid PEM: {e}")))?;
            match kind {
                SectionKind::Certificate if cert.is_none() => cert = Some(der),
                SectionKind::RsaPrivateKey if key.is_none() => {
                    let der = PrivatePkcs1KeyDer::from(der);
                    key = Some(EncodingKey::from_rsa_der(der.secret_pkcs1_der()));
                }
                SectionKind::PrivateKey if key.is_none() => {
                    let der = PrivatePkcs8KeyDer::from(der);
                    // jsonwebtoken extracts the RSA key from a PKCS#8 envelope only through PEM.
                    let pem = to_pem("PRIVATE KEY", der.secret_pkcs8_der());
                    key = Some(EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(
                        |e| {
                            cred_err(
                                path,
                                format!("the PKCS#8 private key is not an RSA key: {e}"),
                            )
                        },
                    )?);
                }
                SectionKind::EcPrivateKey => {
                    return Err(cred_err(
                        path,
                        "EC keys are not accepted by Entra for client assertions: use RSA".into(),
                    ));
                }
                _ => {}
            }
        }
        let cert = cert.ok_or_else(|| cred_err(path, "no CERTIFICATE block found".into()))?;
        let key = key.ok_or_else(|| {
            cred_err(path, "no unencrypted RSA PRIVATE KEY or PRIVATE KEY block found (the key must sit in the same file)".into())
        })?;
        if let Err(e) = x509_parser::parse_x509_certificate(&cert) {
            return Err(cred_err(
                path,
                format!("the certificate does not parse: {e}"),
            ));
        }
        let signer = CertificateSigner {
            key,
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&cert)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&cert)),
            alg,
            path: path.to_owned(),
        };
        // Sign once now so a key that ring refuses (too short, wrong type) fails at start-up.
        signer.assertion("https://check.invalid/token", "check")?;
        Ok(signer)
    }

    /// A fresh signed assertion for `token_endpoint` and `client_id`.
    pub(crate) fn assertion(
        &self,
        token_endpoint: &str,
        client_id: &str,
    ) -> Result<Secret<String>, GraphError> {
        let now = chrono::Utc::now().timestamp();
        let mut header = match self.alg {
            AssertionAlg::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(self.x5t_s256.clone());
                h
            }
            AssertionAlg::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(self.x5t.clone());
                h
            }
        };
        header.typ = Some("JWT".to_owned());
        let claims = Claims {
            aud: token_endpoint,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|e| cred_err(&self.path, format!("cannot sign the client assertion: {e}")))
    }
}

fn cred_err(path: &Path, reason: String) -> GraphError {
    GraphError::Credential {
        path: path.to_owned(),
        reason,
    }
}

fn to_pem(label: &str, der: &[u8]) -> Secret<String> {
    let b64 = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    Secret::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use rustls_pki_types::CertificateDer;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/graph")
            .join(name)
    }

    fn public_key(path: &Path) -> (DecodingKey, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let der = CertificateDer::from_pem_slice(&bytes).unwrap().to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let spki = cert.public_key().subject_public_key.data.to_vec();
        (DecodingKey::from_rsa_der(&spki), der)
    }

    fn check(file: &str, alg: AssertionAlg) {
        let path = fixture(file);
        let signer = CertificateSigner::from_pem_file(&path, alg).unwrap();
        let jwt = signer
            .assertion("https://login.example/t/oauth2/v2.0/token", "client-1")
            .unwrap();
        let (key, der) = public_key(&path);
        let algo = if alg == AssertionAlg::Ps256 {
            Algorithm::PS256
        } else {
            Algorithm::RS256
        };
        let mut v = Validation::new(algo);
        v.set_audience(&["https://login.example/t/oauth2/v2.0/token"]);
        v.set_issuer(&["client-1"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt.expose(), &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "client-1");
        let exp = data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap();
        assert!((300..=600).contains(&exp));
        match alg {
            AssertionAlg::Ps256 => {
                assert_eq!(
                    data.header.x5t_s256.as_deref(),
                    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&der)).as_str())
                );
                assert!(data.header.x5t.is_none());
            }
            AssertionAlg::Rs256 => {
                assert_eq!(
                    data.header.x5t.as_deref(),
                    Some(URL_SAFE_NO_PAD.encode(Sha1::digest(&der)).as_str())
                );
            }
        }
    }

    #[test]
    fn ps256_assertion_verifies_with_the_certificate_key() {
        check("app-pkcs8.pem", AssertionAlg::Ps256);
        check("app-pkcs1.pem", AssertionAlg::Ps256);
    }

    #[test]
    fn rs256_assertion_carries_sha1_thumbprint() {
        check("app-pkcs1.pem", AssertionAlg::Rs256);
    }

    #[test]
    fn fresh_jti_per_assertion() {
        let s = CertificateSigner::from_pem_file(&fixture("app-pkcs8.pem"), AssertionAlg::Ps256)
            .unwrap();
        let a = s.assertion("aud", "c").unwrap();
        let b = s.assertion("aud", "c").unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn missing_key_is_a_clear_error() {
        let cert_only = std::fs::read_to_string(fixture("app-pkcs8.pem")).unwrap();
        let cert_only = &cert_only[..cert_only.find("-----BEGIN PRIVATE KEY").unwrap()];
        let e = CertificateSigner::from_pem(
            cert_only.as_bytes(),
            Path::new("x.pem"),
            AssertionAlg::Ps256,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no unencrypted RSA"), "{e}");
        let e =
            CertificateSigner::from_pem_file(Path::new("/nonexistent.pem"), AssertionAlg::Ps256)
                .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn ec_keys_and_broken_pem_are_clear_errors() {
        let pem = std::fs::read_to_string(fixture("app-pkcs8.pem")).unwrap();
        let cert = &pem[..pem.find("-----BEGIN PRIVATE KEY").unwrap()];
        let with_ec = format!(
            "{cert}-----BEGIN EC PRIVATE KEY-----\nAAECAwQF\n-----END EC PRIVATE KEY-----\n"
        );
        let e = CertificateSigner::from_pem(
            with_ec.as_bytes(),
            Path::new("x.pem"),
            AssertionAlg::Ps256,
        )
        .unwrap_err();
        assert!(e.to_string().contains("EC keys are not accepted"), "{e}");
        let cut = &pem[..pem.find("-----END CERTIFICATE").unwrap()];
        let e =
            CertificateSigner::from_pem(cut.as_bytes(), Path::new("x.pem"), AssertionAlg::Ps256)
                .unwrap_err();
        assert!(e.to_string().contains("not valid PEM"), "{e}");
    }
}
