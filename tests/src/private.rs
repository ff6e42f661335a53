//! Private RabbitMQ and PostgreSQL instances for fault tests that stop and restart them: own
//! ports, own data directories, torn down on drop. The shared services are never touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

async fn wait_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A RabbitMQ node of its own.
#[derive(Debug)]
pub struct PrivateRabbit {
    /// AMQP port.
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
    node: String,
    child: Option<Child>,
}

impl PrivateRabbit {
    /// Starts a node (about six seconds).
    pub async fn start() -> Self {
        let dir = temp_dir("aic-rabbit");
        let mut r = Self {
            port: free_port(),
            dist_port: free_port(),
            node: format!("aic-test-{}@localhost", uuid::Uuid::new_v4().simple()),
            dir,
            child: None,
        };
        r.up().await;
        r
    }

    /// The AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn up(&mut self) {
        // The system config names port 5672: this node reads its own.
        let conf = self.dir.join("rabbitmq.conf");
        let _ = std::fs::write(
            &conf,
            format!(
                "listeners.tcp.local = 127.0.0.1:{}\nloopback_users.guest = true\n",
                self.port
            ),
        );
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("HOME", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts (is RabbitMQ installed?)");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(60)).await,
            "private RabbitMQ did not open port {}",
            self.port
        );
        // The port opens a moment before the node accepts AMQP sessions.
        let deadline = Instant::now() + Duration::from_secs(30);
        while aic_core::amqp::connect(&secrecy::SecretString::from(self.url()), "probe")
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "private RabbitMQ never accepted a connection"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the node: SIGTERM to its Erlang VM (found by its private home directory, which
    /// is on its command line), waiting until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let home = self.dir.to_string_lossy().into_owned();
            let _ = Command::new("pkill").args(["-TERM", "-f", &home]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Command::new("pgrep")
                .args(["-f", &home])
                .output()
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false)
            {
                if Instant::now() > deadline {
                    let _ = Command::new("pkill").args(["-KILL", "-f", &home]).status();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same data: durable queues and persistent messages survive.
    pub async fn restart(&mut self) {
        self.stop();
        self.up().await;
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.dir.to_string_lossy()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of its own (trust auth, owned by `postgres`).
#[derive(Debug)]
pub struct PrivatePostgres {
    /// Port.
    pub port: u16,
    dir: PathBuf,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(args: &[&str]) -> bool {
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
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.up().await;
        pg
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
