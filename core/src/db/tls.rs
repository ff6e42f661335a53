//! TLS to PostgreSQL, asked for as libpq asks: `sslmode` and `sslrootcert` in the database URL
//! (`postgres://aic@db.internal/aic?sslmode=verify-full&sslrootcert=/etc/aic/db-ca.pem`).
//!
//! - `disable`: plain TCP.
//! - `allow`, `prefer` (the default, as libpq's): TLS when the server offers it, plain TCP
//!   when it does not. The certificate is not checked — libpq checks none either — so this
//!   keeps eavesdroppers out, not an impostor.
//! - `require`: TLS or no connection, the certificate unchecked; with `sslrootcert`, checked
//!   as `verify-ca` (as libpq does).
//! - `verify-ca`: TLS, and the server's certificate must chain to a CA of `sslrootcert`.
//! - `verify-full`: that, and the certificate must name the host connected to.
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the operating system's
//! store (as libpq's, which is OpenSSL's; `SSL_CERT_FILE` and `SSL_CERT_DIR` name another).
//! The checks need one of the two: without it, as libpq, they are refused rather than trust
//! something unsaid.
//!
//! `sslcert` and `sslkey` (the two together; no default files, unlike libpq's
//! `~/.postgresql/`) present a client certificate whenever the connection is TLS
//! ([`identity`]); `sslpassword` is refused by name: the key must be unencrypted.

use super::DbSetupError;
use identity::Identity;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

mod identity;

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain TCP.
    Disable,
    /// TLS when offered, unchecked.
    Prefer,
    /// TLS, unchecked.
    Require,
    /// TLS, the chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Self, DbSetupError> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(DbSetupError::Tls(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// The URL's TLS settings, and the URL without those tokio-postgres does not read.
#[derive(Debug)]
pub struct Settings {
    /// What `sslmode` asks (`prefer` when unsaid).
    pub mode: Mode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub root: Option<String>,
    /// `sslcert` and `sslkey`: the client certificate's PEM file and its key's.
    pub identity: Option<(String, String)>,
    /// The URL for tokio-postgres: `sslmode` as it reads it (disable, prefer or require),
    /// `sslrootcert` taken out.
    pub url: String,
}

/// Reads `sslmode` and `sslrootcert` from a database URL (the `postgres://` form; a
/// `key=value` string goes to tokio-postgres as it is, where `sslmode` may be disable, prefer
/// or require). Errors name the setting, never the URL, which may hold a password.
pub fn settings(url: &str) -> Result<Settings, DbSetupError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return Ok(Settings {
            mode: Mode::Prefer,
            root: None,
            identity: None,
            url: url.to_string(),
        });
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    let (mut cert, mut cert_key) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .unwrap_or_default();
        match &*key {
            "sslmode" => mode = Some(Mode::parse(&value)?),
            "sslrootcert" => root = Some(value.into_owned()),
            "sslcert" => cert = Some(value.into_owned()),
            "sslkey" => cert_key = Some(value.into_owned()),
            "sslpassword" => {
                return Err(DbSetupError::Tls(
                    "`sslpassword`: encrypted keys are not supported; give sslkey unencrypted \
                     (`openssl pkey -in encrypted.key -out sslkey.pem`), readable by the service only"
                        .into(),
                ));
            }
            _ => kept.push(pair),
        }
    }
    let identity = match (cert, cert_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(DbSetupError::Tls(
                "sslcert and sslkey go together: the client certificate and its key".into(),
            ));
        }
    };
    let mode = mode.unwrap_or(Mode::Prefer);
    // `require` with a CA to check against checks it, as libpq does.
    let mode = match (mode, &root) {
        (Mode::Require, Some(_)) => Mode::VerifyCa,
        (mode, _) => mode,
    };
    kept.push(match mode {
        Mode::Disable => "sslmode=disable",
        Mode::Prefer => "sslmode=prefer",
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "sslmode=require",
    });
    Ok(Settings {
        mode,
        root,
        identity,
        url: format!("{base}?{}", kept.join("&")),
    })
}

/// The parsed configuration and the TLS connector for `url`.
pub fn connector(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), DbSetupError> {
    let s = settings(url)?;
    let config: tokio_postgres::Config = s.url.parse().map_err(DbSetupError::BadUrl)?;
    // A `key=value` string's own sslmode: as tokio-postgres read it.
    let mode = match (s.mode, config.get_ssl_mode()) {
        (Mode::Prefer, SslMode::Disable) => Mode::Disable,
        (Mode::Prefer, SslMode::Require) => Mode::Require,
        (mode, _) => mode,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let chain = match mode {
        Mode::Disable | Mode::Prefer | Mode::Require => None,
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = roots(s.root.as_deref(), mode)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| DbSetupError::Tls(format!("sslrootcert: {e}")))?;
            Some(webpki)
        }
    };
    let verifier = Arc::new(Verifier {
        chain,
        name: mode == Mode::VerifyFull,
        algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbSetupError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let tls = match s.identity {
        // Plain TCP presents nothing: the files are not even read.
        Some((cert, key)) if mode != Mode::Disable => {
            builder.with_client_cert_resolver(Arc::new(Identity::load(cert, key, provider)?))
        }
        _ => builder.with_no_client_auth(),
    };
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// The CAs a certificate must chain to: `sslrootcert`'s file, or the system's store (`system`).
fn roots(root: Option<&str>, mode: Mode) -> Result<Arc<RootCertStore>, DbSetupError> {
    let mut store = RootCertStore::empty();
    match root {
        None => {
            let name = if mode == Mode::VerifyFull {
                "verify-full"
            } else {
                "verify-ca"
            };
            return Err(DbSetupError::Tls(format!(
                "sslmode={name} checks the server's certificate against sslrootcert, which is not set: \
                 name a PEM file of CA certificates, or `system` for the system's store"
            )));
        }
        Some("system") => {
            // The operating system's store, as libpq's `system` (OpenSSL's): `SSL_CERT_FILE`
            // and `SSL_CERT_DIR` name another, as they do for OpenSSL.
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(DbSetupError::Tls(format!(
                    "sslrootcert=system: no CA certificate in the system's store{why} \
                     (install ca-certificates, or name a PEM file)"
                )));
            }
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DbSetupError::Tls(format!("sslrootcert {path}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(DbSetupError::Tls(format!(
                    "sslrootcert {path}: no CA certificate in it"
                )));
            }
        }
    }
    Ok(Arc::new(store))
}

/// What a mode checks of the server's certificate: its chain (`verify-ca`, `verify-full`), the
/// host name it gives (`verify-full`), or nothing (`prefer`, `require`). The handshake must be
/// signed by the certificate's key whatever the mode.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, settings};

    #[test]
    fn libpq_settings_are_read_and_taken_out_of_the_url() {
        let s = settings("postgres://aic:p%40ss@db:5432/aic?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem")
            .expect("settings");
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(
            s.url,
            "postgres://aic:p%40ss@db:5432/aic?application_name=x&sslmode=require"
        );
        let plain = settings("postgres://aic@db/aic").expect("settings");
        assert_eq!(plain.mode, Mode::Prefer);
        assert_eq!(plain.url, "postgres://aic@db/aic");
        let dsn = settings("host=db sslmode=require").expect("settings");
        assert_eq!(dsn.url, "host=db sslmode=require");
    }

    #[test]
    fn require_with_a_ca_checks_it_as_libpq_does() {
        let s = settings("postgres://db/aic?sslmode=require&sslrootcert=system").expect("ok");
        assert_eq!(s.mode, Mode::VerifyCa);
        assert_eq!(s.url, "postgres://db/aic?sslmode=require");
    }

    #[test]
    fn bad_settings_are_named_and_the_url_is_not_echoed() {
        let bad = |url: &str| settings(url).expect_err("refused").to_string();
        let e = bad("postgres://aic:secret-pw@db/aic?sslmode=verify");
        assert!(e.contains("sslmode `verify`"), "{e}");
        assert!(!e.contains("secret-pw"), "{e}");
        let e = bad("postgres://aic:secret-pw@db/aic?sslcert=/c.pem");
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        let e = bad("postgres://aic:secret-pw@db/aic?sslcert=/c.pem&sslkey=/k.pem&sslpassword=x");
        assert!(e.contains("`sslpassword`: encrypted keys"), "{e}");
        let refused = |url: &str| match super::connector(url) {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e.to_string(),
        };
        // tokio-postgres says "invalid connection string" and keeps which option to its cause.
        let e = refused("postgres://aic:secret-pw@db/aic?sslmode=require&bogus=1");
        assert!(e.contains("unknown option `bogus`"), "{e}");
        assert!(!e.contains("secret-pw"), "{e}");
        let e = refused("postgres://db/aic?sslmode=verify-full");
        assert!(e.contains("sslrootcert, which is not set"), "{e}");
        let e = refused("postgres://db/aic?sslmode=verify-ca&sslrootcert=/nonexistent.pem");
        assert!(e.contains("sslrootcert /nonexistent.pem"), "{e}");
        let e = refused("postgres://db/aic?sslcert=/nonexistent/c.pem&sslkey=/nonexistent/k.pem");
        assert!(e.contains("sslcert /nonexistent/c.pem"), "{e}");
        // Plain TCP presents no certificate, so the files are not read.
        assert!(
            super::connector("postgres://db/aic?sslmode=disable&sslcert=/n/c.pem&sslkey=/n/k.pem")
                .is_ok()
        );
    }
}
