//! A private PostgreSQL behind a network link a test can cut: the server runs in a network
//! namespace of its own, joined to the test's by a veth pair. Cut, the link drops every packet
//! — no refusal, no reset — as when a database host vanishes or a failover moves its address;
//! the shared services, and every other test, are untouched.

use crate::private::{PG_BIN, as_postgres, temp_dir};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server, its namespace and its link; all removed when dropped.
#[derive(Debug)]
pub struct PartitionablePostgres {
    ns: String,
    inside: String,
    address: String,
    dir: PathBuf,
}

/// Runs `ip` (in the namespace `ns` when given); true when it succeeded.
fn ip(ns: Option<&str>, args: &[&str]) -> bool {
    let mut command = Command::new("ip");
    if let Some(ns) = ns {
        command.args(["netns", "exec", ns, "ip"]);
    }
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl PartitionablePostgres {
    /// Creates the namespace and its link, then creates and starts a cluster in it (about a
    /// second). Panics (failing the test) when namespaces cannot be made here.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().as_u128();
        let tag = format!("{:08x}", id as u32);
        // A /30 of its own in 10.200.0.0/13, picked at random among 131,072.
        let n = (id >> 32) as u32 % (8 << 14);
        let net = [
            10,
            200 + (n >> 14) as u8,
            ((n >> 6) & 0xff) as u8,
            ((n & 0x3f) * 4) as u8,
        ];
        let at = |last: u8| format!("{}.{}.{}.{}", net[0], net[1], net[2], net[3] + last);
        let pg = Self {
            ns: format!("aic-part-{tag}"),
            inside: format!("aicp{tag}b"),
            address: at(2),
            dir: temp_dir("aic-pg"),
        };
        let outside = format!("aicp{tag}a");
        let (ns, inside) = (pg.ns.as_str(), pg.inside.as_str());
        let host = format!("{}/30", at(1));
        let peer = format!("{}/30", pg.address);
        let steps: [(Option<&str>, Vec<&str>); 7] = [
            (None, vec!["netns", "add", ns]),
            (
                None,
                vec![
                    "link", "add", &outside, "type", "veth", "peer", "name", inside,
                ],
            ),
            (None, vec!["link", "set", inside, "netns", ns]),
            (None, vec!["addr", "add", &host, "dev", &outside]),
            (None, vec!["link", "set", &outside, "up"]),
            (Some(ns), vec!["addr", "add", &peer, "dev", inside]),
            (Some(ns), vec!["link", "set", inside, "up"]),
        ];
        for (within, args) in &steps {
            assert!(
                ip(*within, args),
                "ip {args:?} failed (network namespaces need root)"
            );
        }
        pg.init_and_start().await;
        pg
    }

    async fn init_and_start(&self) {
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&self.dir)
            .status();
        let data = self.data();
        let initdb = format!("{PG_BIN}/initdb");
        assert!(
            as_postgres(&[&initdb, "-A", "trust", "-U", "postgres", "-D", &data]),
            "initdb failed"
        );
        let hba = self.dir.join("data").join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        rules.push_str("\nhost all all 10.200.0.0/13 trust\n");
        std::fs::write(&hba, rules).expect("pg_hba.conf");
        let opts = format!(
            "-p 5432 -k {} -c listen_addresses={}",
            self.dir.to_string_lossy(),
            self.address
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        let started = Command::new("ip")
            .args(["netns", "exec", &self.ns, "runuser", "-u", "postgres", "--"])
            .args([&format!("{PG_BIN}/pg_ctl"), "-D", &data, "-o", &opts])
            .args(["-l", &log, "-w", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(started, "pg_ctl start failed in {}", self.ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect((self.address.as_str(), 5432))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "PostgreSQL never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// A URL allowed to create databases.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@{}:5432/postgres", self.address)
    }

    /// Cuts the link (every packet dropped, both ways) until the returned guard is dropped.
    pub fn cut(&self) -> Cut<'_> {
        assert!(ip(Some(&self.ns), &["link", "set", &self.inside, "down"]));
        Cut(self)
    }
}

/// The link cut; restored when dropped (a test that fails while it is cut leaves a database
/// its clean-up can reach).
#[derive(Debug)]
pub struct Cut<'a>(&'a PartitionablePostgres);

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        ip(Some(&self.0.ns), &["link", "set", &self.0.inside, "up"]);
    }
}

impl Drop for PartitionablePostgres {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "runuser", "-u", "postgres", "--"])
            .args([&format!("{PG_BIN}/pg_ctl"), "-D", &self.data()])
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The veth pair goes with the namespace.
        ip(None, &["netns", "del", &self.ns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
