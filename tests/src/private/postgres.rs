//! A PostgreSQL cluster of the test's own, on a port of its own: for tests that stop, restart
//! or reconfigure the database server, never the shared one.

use super::{free_port, temp_dir, wait_port};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A PostgreSQL cluster of its own (trust auth, owned by `postgres`).
#[derive(Debug)]
pub struct PrivatePostgres {
    /// Port.
    pub port: u16,
    dir: PathBuf,
}

pub(crate) const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub(crate) fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl PrivatePostgres {
    /// Creates and starts a cluster (about a second).
    pub async fn start() -> Self {
        let pg = Self::init();
        pg.up().await;
        pg
    }

    /// Creates and starts a cluster that takes TLS connections only (plain ones are refused by
    /// its `pg_hba.conf`), presenting the certificate `cert` with its key `key` (PEM files).
    /// With `client_ca`, it authenticates by client certificate (`cert`): one that CA signed,
    /// naming the user in its CN, and no password.
    pub async fn start_tls_only(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Self {
        let pg = Self::init();
        let data = pg.dir.join("data");
        std::fs::copy(cert, data.join("server.crt")).expect("the certificate");
        std::fs::copy(key, data.join("server.key")).expect("the key");
        let mut settings =
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_string();
        let method = match client_ca {
            Some(ca) => {
                std::fs::copy(ca, data.join("client-ca.pem")).expect("the CA");
                settings.push_str("ssl_ca_file = 'client-ca.pem'\n");
                "cert"
            }
            None => "trust",
        };
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("postgresql.conf");
        let hba = format!(
            "local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhostssl all all ::1/128 {method}\n"
        );
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&data)
            .status();
        // PostgreSQL refuses a key others may read.
        let _ = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status();
        pg.up().await;
        pg
    }

    fn init() -> Self {
        let dir = temp_dir("aic-pg");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        assert!(
            as_postgres(&[
                &format!("{PG_BIN}/initdb"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-D",
                &data.to_string_lossy()
            ]),
            "initdb failed"
        );
        Self {
            port: free_port(),
            dir,
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// A URL allowed to create databases.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.to_string_lossy()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        assert!(
            as_postgres(&[
                &format!("{PG_BIN}/pg_ctl"),
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start"
            ]),
            "pg_ctl start failed"
        );
        assert!(wait_port(self.port, Duration::from_secs(30)).await);
    }

    /// Stops (fast: open sessions are cut, as in a crash of the database server's clients).
    pub fn stop(&self) {
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &self.data(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
    }

    /// Starts again on the same data.
    pub async fn start_again(&self) {
        self.up().await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
