//! Certificates for the TLS tests, made with the `openssl` command: a CA, a second CA that
//! signed nothing here, a server certificate for `localhost` (only) and a client certificate,
//! both signed by the first CA, in a folder removed on drop.

use std::path::PathBuf;
use std::process::Command;

/// The folder of certificates and keys (`ca.pem`, `other-ca.pem`, `server.crt`,
/// `server.key`, `client.crt`, `client.key`).
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// Makes them (a few tens of milliseconds).
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("aic-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let pki = Self { dir };
        for ca in ["ca", "other-ca"] {
            let (subject, key, out) = (
                format!("/CN=aic test {ca}"),
                format!("{ca}.key"),
                format!("{ca}.pem"),
            );
            let ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"];
            let usage = ["-addext", "keyUsage=critical,keyCertSign,cRLSign"];
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject];
            args.extend(EC.iter().chain(&ca_ext).chain(&usage));
            args.extend(["-keyout", &key, "-out", &out]);
            pki.openssl(&args);
        }
        pki.sign(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        pki.sign("client", "aic-worker", "extendedKeyUsage=clientAuth");
        pki
    }

    /// Makes `<name>.crt` and `<name>.key` for `cn`, with `extensions` (lines of an openssl
    /// extension file), signed by the CA.
    pub fn sign(&self, name: &str, cn: &str, extensions: &str) {
        let (subject, key, csr, ext, crt) = (
            format!("/CN={cn}"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req", "-nodes", "-subj", &subject];
        args.extend(EC);
        args.extend(["-keyout", &key, "-out", &csr]);
        self.openssl(&args);
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}\n"),
        )
        .expect("extensions");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }

    /// Runs `openssl` with `args` in the folder.
    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The path of one of its files.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
