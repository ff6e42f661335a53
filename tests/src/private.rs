//! Private RabbitMQ and PostgreSQL instances for fault tests that stop and restart them: own
//! ports, own data directories, torn down on drop. The shared services are never touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now, below the kernel's ephemeral range (32768-60999 by default), where the
/// tests' own outgoing connections and port-0 listeners take theirs: a port taken from that
/// range could be handed to one of them before the private server binds it (one RabbitMQ node
/// failed to start with `dist_port_already_used` that way). Skips the ports of this machine's
/// services (RabbitMQ's 25672 among them).
pub(crate) fn free_port() -> u16 {
    const TAKEN: [u16; 3] = [25672, 27017, 28015];
    loop {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if !TAKEN.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub(crate) fn temp_dir(prefix: &str) -> PathBuf {
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
    /// A TLS listener's port, with the CA, certificate and key it presents and checks.
    tls: Option<(u16, [PathBuf; 3])>,
}

impl PrivateRabbit {
    /// Starts a node (about six seconds). A node that exits while starting (a port taken
    /// between choosing and binding it) is started again on other ports, three times at most.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a node that also listens for TLS (`amqps://…:`[`Self::tls_port`]), presenting
    /// `cert` (with its key `key`) and asking each client for a certificate signed by `ca`.
    pub async fn start_tls(ca: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        Self::start_with(Some((free_port(), [ca, cert, key]))).await
    }

    /// The TLS listener's port.
    pub fn tls_port(&self) -> u16 {
        self.tls.as_ref().expect("a node started with TLS").0
    }

    async fn start_with(tls: Option<(u16, [PathBuf; 3])>) -> Self {
        let dir = temp_dir("aic-rabbit");
        let mut r = Self {
            port: free_port(),
            dist_port: free_port(),
            node: format!("aic-test-{}@localhost", uuid::Uuid::new_v4().simple()),
            dir,
            child: None,
            tls,
        };
        for attempt in 1..=3 {
            match r.up().await {
                Ok(()) => return r,
                Err(why) if attempt < 3 => {
                    eprintln!(
                        "private RabbitMQ on port {} did not start ({why}); again on other ports",
                        r.port
                    );
                    r.stop();
                    r.port = free_port();
                    r.dist_port = free_port();
                    if let Some((port, _)) = &mut r.tls {
                        *port = free_port();
                    }
                }
                Err(why) => panic!("private RabbitMQ did not start: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node and waits until it accepts AMQP sessions; says why it did not.
    async fn up(&mut self) -> Result<(), String> {
        // A dump of an earlier start would be read as this one's reason.
        let _ = std::fs::remove_file(self.dir.join("erl_crash.dump"));
        // The system config names port 5672: this node reads its own.
        let conf = self.dir.join("rabbitmq.conf");
        let mut settings = format!(
            "listeners.tcp.local = 127.0.0.1:{}\nloopback_users.guest = true\n",
            self.port
        );
        if let Some((port, [ca, cert, key])) = &self.tls {
            settings.push_str(&format!(
                "listeners.ssl.local = 127.0.0.1:{port}\nssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n",
                ca.display(),
                cert.display(),
                key.display()
            ));
        }
        let _ = std::fs::write(&conf, settings);
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
            // Erlang writes its crash dump to the working directory otherwise: the test
            // crate's own folder.
            .env("ERL_CRASH_DUMP", self.dir.join("erl_crash.dump"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts (is RabbitMQ installed?)");
        self.child = Some(child);
        // The port opens a moment before the node accepts AMQP sessions.
        let deadline = Instant::now() + Duration::from_secs(90);
        while aic_core::amqp::connect(&secrecy::SecretString::from(self.url()), "probe")
            .await
            .is_err()
        {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("the node exited ({status}){}", self.slogan()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no AMQP session on port {} within 90 s{}",
                    self.port,
                    self.slogan()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match &self.tls {
            Some((port, _)) if !wait_port(*port, Duration::from_secs(30)).await => {
                Err(format!("the TLS listener did not open port {port}"))
            }
            _ => Ok(()),
        }
    }

    /// The Erlang VM's own reason for stopping, from its crash dump, if it wrote one.
    fn slogan(&self) -> String {
        std::fs::read_to_string(self.dir.join("erl_crash.dump"))
            .ok()
            .and_then(|d| {
                d.lines()
                    .find_map(|l| l.strip_prefix("Slogan: ").map(str::to_owned))
            })
            .map(|s| format!(": {}", s.chars().take(300).collect::<String>()))
            .unwrap_or_default()
    }

    /// Freezes the node (SIGSTOP to its processes) until the returned guard is dropped: its
    /// sockets stay open and the kernel still accepts and acknowledges connections, but the
    /// broker answers nothing — a stalled host, a load balancer with no node behind it. (A test
    /// that fails while it is frozen thaws it before its clean-up needs it.)
    pub fn frozen(&self) -> Frozen<'_> {
        self.signal("-STOP");
        Frozen(self)
    }

    fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let home = self.dir.to_string_lossy().into_owned();
        let _ = Command::new("pkill").args([signal, "-f", &home]).status();
    }

    /// Stops the node: SIGTERM to its Erlang VM (found by its private home directory, which
    /// is on its command line), waiting until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.thaw();
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

    /// Runs `rabbitmqctl` on this node with `args`, as its operator would (the node's cookie
    /// is in its private home); panics, with what it printed, when the command fails.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .env("HOME", &self.dir)
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops and starts again on the same data: durable queues and persistent messages survive.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.up().await {
            panic!("private RabbitMQ did not start again: {why}");
        }
    }
}

/// A frozen node ([`PrivateRabbit::frozen`]); thawed when dropped.
#[derive(Debug)]
pub struct Frozen<'a>(&'a PrivateRabbit);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.thaw();
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

mod postgres;
pub use postgres::PrivatePostgres;
pub(crate) use postgres::{PG_BIN, as_postgres};
