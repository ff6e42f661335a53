//! TLS to RabbitMQ beyond the system's CAs, asked for in the `amqps://` URL as RabbitMQ's own
//! URI query parameters do (`amqps://aic:…@rabbit:5671/%2f?cacertfile=/etc/aic/rabbit-ca.pem`):
//!
//! - `cacertfile`: a PEM file of CA certificates trusted besides the system's, for a broker
//!   whose certificate a private CA signed;
//! - `certfile` and `keyfile`: the client certificate (PEM) and its PKCS#8 key (PEM, not
//!   encrypted), for a broker that asks for one (`ssl_options.fail_if_no_peer_cert`), the two
//!   together.
//!
//! The broker's certificate is always checked, host name included. The files are read at every
//! connection, so a renewed certificate is taken at the next reconnection. Errors name the
//! parameter and the file, never the URL, which holds a password.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use std::io;

/// The TLS settings `url`'s query asks for (none: the system's CAs, no client certificate).
pub(super) fn config(url: &str) -> io::Result<OwnedTLSConfig> {
    let mut tls = OwnedTLSConfig::default();
    let Some((_, query)) = url.split_once('?') else {
        return Ok(tls);
    };
    let (mut cert, mut key) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "cacertfile" => tls.cert_chain = Some(pem(&name, &value)?),
            "certfile" => cert = Some(pem(&name, &value)?),
            "keyfile" => key = Some(pem(&name, &value)?),
            _ => {}
        }
    }
    tls.identity = match (cert, key) {
        (Some(pem), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: pem.into_bytes(),
            key: key.into_bytes(),
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                "certfile and keyfile go together: the client certificate and its key".into(),
            ));
        }
    };
    Ok(tls)
}

/// The PEM text of the file `path` that the URL's parameter `name` gives.
fn pem(name: &str, path: &str) -> io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("AMQP URL's {name} {path}: {e}")))?;
    if !text.contains("-----BEGIN ") {
        return Err(invalid(format!(
            "AMQP URL's {name} {path}: no PEM block in it"
        )));
    }
    Ok(text)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

#[cfg(test)]
mod tests {
    use super::config;

    #[test]
    fn no_parameters_keep_the_system_cas_and_bad_ones_are_named() {
        let plain = config("amqps://u:secret-pw@rabbit/%2f?heartbeat=10").expect("ok");
        assert!(plain.cert_chain.is_none() && plain.identity.is_none());
        let e = config("amqps://u:secret-pw@rabbit/%2f?cacertfile=%2Fnonexistent%2Fca.pem")
            .expect_err("missing")
            .to_string();
        assert!(e.contains("cacertfile /nonexistent/ca.pem"), "{e}");
        assert!(!e.contains("secret-pw"), "{e}");
        let not_pem = std::env::temp_dir().join(format!("aic-not-pem-{}", std::process::id()));
        std::fs::write(&not_pem, "hello").expect("file");
        let e = config(&format!(
            "amqps://rabbit/%2f?certfile={}",
            not_pem.display()
        ))
        .expect_err("not pem")
        .to_string();
        assert!(e.contains("no PEM block"), "{e}");
        let _ = std::fs::remove_file(&not_pem);
    }
}
