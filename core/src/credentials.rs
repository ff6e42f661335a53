//! Sealing connection credentials at rest: AES-256-GCM under a key from configuration, the key
//! id stored beside the ciphertext so keys can rotate, and the row's identity bound in as
//! associated data so a ciphertext copied onto another connection does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use zeroize::Zeroizing;

/// The associated data a connection's secrets are sealed with: its tenant and its own id.
pub fn connection_aad(tenant: aic_proto::TenantId, connection: aic_proto::ConnectionId) -> Vec<u8> {
    [
        tenant.0.as_bytes().as_slice(),
        connection.0.as_bytes().as_slice(),
    ]
    .concat()
}

/// The configured keys, by id, each kept as its cipher: the AES key schedule is expanded once,
/// not for every execution whose credentials are opened.
#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish()
    }
}

/// A key list that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// No key at all.
    #[error("AIC_CREDENTIAL_KEYS is empty: give at least one `key_id:base64(32 bytes)`")]
    Empty,
    /// An entry that is not `id:base64`.
    #[error("AIC_CREDENTIAL_KEYS entry #{0} is not `key_id:base64(32 bytes)`")]
    Malformed(usize),
    /// A key that is not 32 bytes of base64.
    #[error("AIC_CREDENTIAL_KEYS key '{0}' must be exactly 32 bytes, base64-encoded")]
    BadKey(String),
    /// The active id names no listed key.
    #[error("AIC_CREDENTIAL_ACTIVE_KEY '{0}' is not among AIC_CREDENTIAL_KEYS")]
    UnknownActive(String),
    /// Two keys under one id: the later would silently take the earlier's place, and every
    /// row sealed with the earlier would no longer open.
    #[error("AIC_CREDENTIAL_KEYS lists key id '{0}' twice: give each key its own id")]
    Duplicate(String),
}

/// 1 to 64 letters, digits, `.`, `_` or `-`: a name (a key id, an AMQP namespace) that no
/// list, URL or tool reads otherwise.
pub fn is_plain_name(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A key id as `keygen` makes it and `AIC_CREDENTIAL_KEYS` reads it: letters, digits, `.`, `_`
/// and `-`, 1 to 64 of them (a `:` or `,` in it would split the entry, white space vanish).
pub fn check_key_id(id: &str) -> Result<(), String> {
    is_plain_name(id)
        .then_some(())
        .ok_or_else(|| format!("'{id}' is not a key id: 1 to 64 letters, digits, '.', '_' or '-'"))
}

/// Credentials that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Sealed under a key no longer configured.
    #[error("credentials are sealed with key '{0}', which is not configured")]
    UnknownKey(String),
    /// Wrong key, tampered ciphertext, or copied from another connection.
    #[error("credentials failed authentication (wrong key or tampered data)")]
    Tampered,
}

/// A sealed secret as stored: `key_id`, `nonce`, `ciphertext` columns.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// 96-bit GCM nonce, random per sealing.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// The secret fields of one connection, e.g. `client_id`, `client_secret`.
#[derive(Clone, Default)]
pub struct SecretFields(BTreeMap<String, SecretString>);

impl fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the values never reach a log line.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretFields {
    /// Wraps a map of field name to value.
    pub fn new(fields: BTreeMap<String, SecretString>) -> Self {
        Self(fields)
    }

    /// One field, if present and non-blank.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0
            .get(name)
            .filter(|v| !v.expose_secret().trim().is_empty())
    }

    /// A copy with one field replaced (a rotated refresh token).
    pub fn with(&self, name: &str, value: SecretString) -> Self {
        let mut fields = self.0.clone();
        fields.insert(name.to_string(), value);
        Self(fields)
    }

    /// Field names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The fields as a map, to be checked or sealed again (an edit that keeps them).
    pub fn into_map(self) -> BTreeMap<String, SecretString> {
        self.0
    }
}

impl Keyring {
    /// Parses `id:base64,id:base64`; `active` defaults to the first id.
    pub fn parse(raw: &SecretString, active: Option<&str>) -> Result<Self, KeyringError> {
        let mut keys = HashMap::new();
        let mut first = None;
        for (i, entry) in raw
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, b64) = entry
                .split_once(':')
                .ok_or(KeyringError::Malformed(i + 1))?;
            let id = id.trim().to_string();
            if id.is_empty() {
                return Err(KeyringError::Malformed(i + 1));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| KeyringError::BadKey(id.clone()))?,
            );
            if bytes.len() != 32 {
                return Err(KeyringError::BadKey(id));
            }
            first.get_or_insert_with(|| id.clone());
            let key = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            if keys.insert(id.clone(), key).is_some() {
                return Err(KeyringError::Duplicate(id));
            }
        }
        let first = first.ok_or(KeyringError::Empty)?;
        let active = active.map(str::to_string).unwrap_or(first);
        if !keys.contains_key(&active) {
            return Err(KeyringError::UnknownActive(active));
        }
        Ok(Self { active, keys })
    }

    /// A fresh random key in the configuration format, for `keygen` commands and tests.
    pub fn generate_entry(id: &str) -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{id}:{}", STANDARD.encode(key))
    }

    /// The id of the key new credentials are sealed with.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// The ids of the keys it holds, sorted (never the keys).
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Seals `fields` under the active key, bound to `aad` (the row's identity).
    pub fn seal(&self, fields: &SecretFields, aad: &[u8]) -> Sealed {
        let plain: BTreeMap<&str, &str> = fields
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        let plaintext = Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default());
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self.keys[&self.active]
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad,
                },
            )
            // AES-GCM encryption fails only for inputs of gigabytes.
            .unwrap_or_default();
        Sealed {
            key_id: self.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens what [`Keyring::seal`] sealed with the same `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretFields, OpenError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != 12 {
            return Err(OpenError::Tampered);
        }
        // The opened text is wiped when dropped; the values live on in `SecretString`s.
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Tampered)?;
        // Each value goes straight into its `SecretString`, without a map of plain strings
        // in between.
        serde_json::from_slice(&plaintext)
            .map(SecretFields)
            .map_err(|_| OpenError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(raw: &str) -> Keyring {
        Keyring::parse(&SecretString::from(raw.to_string()), None).expect("valid keyring")
    }

    fn fields() -> SecretFields {
        SecretFields::new(BTreeMap::from([(
            "client_secret".to_string(),
            SecretString::from("s3cr3t".to_string()),
        )]))
    }

    #[test]
    fn sealed_fields_open_with_the_same_row_identity() {
        let k = ring(&Keyring::generate_entry("k1"));
        let sealed = k.seal(&fields(), b"row-1");
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cr3t"));
        let opened = k.open(&sealed, b"row-1").expect("opens");
        assert_eq!(
            opened.get("client_secret").map(|s| s.expose_secret()),
            Some("s3cr3t")
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let k = ring(&Keyring::generate_entry("k1"));
        let sealed = k.seal(&fields(), b"row-1");
        assert!(matches!(
            k.open(&sealed, b"row-2"),
            Err(OpenError::Tampered)
        ));
    }

    #[test]
    fn rotated_keys_still_open_old_rows() {
        let old = Keyring::generate_entry("k1");
        let sealed = ring(&old).seal(&fields(), b"r");
        let rotated = ring(&format!("{},{old}", Keyring::generate_entry("k2")));
        assert!(rotated.open(&sealed, b"r").is_ok());
        assert_eq!(rotated.seal(&fields(), b"r").key_id, "k2");
    }

    #[test]
    fn bad_key_lists_are_named() {
        let parse = |s: &str| Keyring::parse(&SecretString::from(s.to_string()), None);
        assert_eq!(parse("").unwrap_err(), KeyringError::Empty);
        assert_eq!(parse("nocolon").unwrap_err(), KeyringError::Malformed(1));
        assert_eq!(
            parse("k1:c2hvcnQ=").unwrap_err(),
            KeyringError::BadKey("k1".into())
        );
        // A rotation that reused the old key's id: the old key would have been dropped.
        let twice = format!(
            "{},{}",
            Keyring::generate_entry("k1"),
            Keyring::generate_entry("k1")
        );
        assert_eq!(
            parse(&twice).unwrap_err(),
            KeyringError::Duplicate("k1".into())
        );
    }

    #[test]
    fn key_ids_are_what_the_list_can_carry() {
        for good in ["k1", "2026-12.prod_A"] {
            assert_eq!(check_key_id(good), Ok(()), "{good}");
        }
        for bad in ["", "a:b", "a,b", " k1", "k 1", &"k".repeat(65)] {
            assert!(check_key_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_values() {
        assert_eq!(format!("{:?}", fields()), "{\"client_secret\"}");
    }
}
