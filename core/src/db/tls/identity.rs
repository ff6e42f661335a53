//! The client certificate presented to PostgreSQL, as libpq's `sslcert` and `sslkey` name it:
//! for a server whose `pg_hba.conf` authenticates by certificate (`cert`, or
//! `clientcert=verify-ca|verify-full`), as managed databases and meshes with short-lived
//! certificates do.
//!
//! The two files are read and checked at start-up — a missing file, a file without a PEM
//! certificate or key, a key that is not the certificate's, a key file others may read: each
//! stops the process naming the parameter and the file — and read again at every new connection, so that a renewed
//! certificate (cert-manager, Vault) is presented from the pool's next connection without a
//! restart. A renewal caught half-written, or a bad one, is logged and the last good pair
//! presented meanwhile.

use super::super::DbSetupError;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Mutex};

/// The certificate and key files, and the pair last read from them.
#[derive(Debug)]
pub(super) struct Identity {
    cert: String,
    key: String,
    provider: Arc<CryptoProvider>,
    last: Mutex<Arc<CertifiedKey>>,
}

impl Identity {
    /// Reads `cert` and `key` (paths), refusing a pair that cannot be presented.
    pub(super) fn load(
        cert: String,
        key: String,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, DbSetupError> {
        let pair = read(&cert, &key, &provider).map_err(DbSetupError::Tls)?;
        Ok(Self {
            cert,
            key,
            provider,
            last: Mutex::new(pair),
        })
    }
}

/// The certificate chain of `cert` with the key of `key`, which must be its key. Errors name
/// the parameter and the file, never what is in them.
fn read(cert: &str, key: &str, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("sslcert {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("sslcert {cert}: no certificate in it"));
    }
    private(key)?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "sslkey {key}: no unencrypted private key in it (PKCS#8, PKCS#1 or SEC1 PEM; \
             an encrypted key is not supported)"
        ),
        e => format!("sslkey {key}: {e}"),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("sslkey {key}: {e}"))?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "sslkey {key} is not the key of sslcert {cert}'s certificate"
            ));
        }
        Err(e) => return Err(format!("sslcert {cert}: {e}")),
    }
    Ok(Arc::new(pair))
}

/// Refuses a key file others may read, or the group write, as libpq does (which, for a file
/// the process's own user owns, refuses group read as well): where it is, the key is a secret
/// in name only.
fn private(key: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(key).map_err(|e| format!("sslkey {key}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("sslkey {key}: not a file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o037 != 0 {
        return Err(format!(
            "sslkey {key} has permissions {mode:04o}: others may read it or its group change \
             it; give it u=rw (0600), or u=rw,g=r (0640) for a group only this service is in \
             (a Kubernetes Secret: defaultMode 0440 with the pod's fsGroup)"
        ));
    }
    Ok(())
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match read(&self.cert, &self.key, &self.provider) {
            Ok(pair) => *last = pair,
            Err(why) => tracing::warn!(
                error = %why,
                "the PostgreSQL client certificate could not be read again; presenting the one read before"
            ),
        }
        Some(last.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
