//! A DNS server a test controls — which names it answers, with what address, after how long,
//! or never — and the control plane run as a process of its own whose name lookups go to it
//! alone: a mount namespace of its own, where `/etc/resolv.conf` names the server. The shared
//! resolver, and every other test, are untouched.

use crate::harness::TestEnv;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The server, listening on port 53 of a loopback address of its own.
#[derive(Debug)]
pub struct StubDns {
    /// Its address (`127.x.y.z`).
    pub ip: Ipv4Addr,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
    dir: PathBuf,
}

#[derive(Debug, Default)]
struct Zone {
    /// A name's address (`None`: never answered) and how long its answer takes.
    names: HashMap<String, (Option<Ipv4Addr>, Duration)>,
    /// The names asked, in order (one per A or AAAA query).
    asked: Vec<String>,
}

impl StubDns {
    /// Listens on a free loopback address; a name it is not told of is answered NXDOMAIN.
    pub async fn start() -> Self {
        let mut tries = 0;
        let (socket, ip) = loop {
            let n = uuid::Uuid::new_v4().as_u128();
            let ip = Ipv4Addr::new(127, 53, (n >> 8) as u8, (n as u8).clamp(2, 254));
            match UdpSocket::bind((ip, 53)).await {
                Ok(s) => break (s, ip),
                Err(e) if tries == 20 => panic!("no port 53 to listen on (root needed): {e}"),
                Err(_) => tries += 1,
            }
        };
        let dir = crate::private::temp_dir("aic-dns");
        let conf = format!("nameserver {ip}\noptions timeout:10 attempts:1\n");
        std::fs::write(dir.join("resolv.conf"), conf).expect("resolv.conf");
        let zone = Arc::new(Mutex::new(Zone::default()));
        let task = tokio::spawn(serve(Arc::new(socket), Arc::clone(&zone)));
        Self {
            ip,
            zone,
            task,
            dir,
        }
    }

    /// From now on, `name` resolves to `ip` (`None`: its queries go unanswered) after `after`.
    pub fn answer(&self, name: &str, ip: Option<Ipv4Addr>, after: Duration) {
        let mut zone = self.zone.lock().expect("zone");
        zone.names.insert(name.to_ascii_lowercase(), (ip, after));
    }

    /// How many queries for `name` it has received.
    pub fn asked(&self, name: &str) -> usize {
        let zone = self.zone.lock().expect("zone");
        zone.asked.iter().filter(|n| n.as_str() == name).count()
    }

    /// Waits (up to 10 s) until `name` has been asked for `times` times in all.
    pub async fn until_asked(&self, name: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.asked(name) < times {
            assert!(
                Instant::now() < deadline,
                "{name} not asked for {times} times"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for StubDns {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(socket: Arc<UdpSocket>, zone: Arc<Mutex<Zone>>) {
    let mut buf = [0u8; 512];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let Some((name, end, qtype)) = question(&buf[..n]) else {
            continue;
        };
        let known = {
            let mut zone = zone.lock().expect("zone");
            zone.asked.push(name.clone());
            zone.names.get(&name).copied()
        };
        let query = buf[..end].to_vec();
        let socket = Arc::clone(&socket);
        tokio::spawn(async move { reply(&socket, from, &query, qtype, known).await });
    }
}

/// Answers `query` (its header and question) as `known` says: NXDOMAIN when not known, the
/// address for an A query, no record for another type; nothing when known never to answer.
async fn reply(
    socket: &UdpSocket,
    to: SocketAddr,
    query: &[u8],
    qtype: u16,
    known: Option<(Option<Ipv4Addr>, Duration)>,
) {
    let (address, rcode) = match known {
        None => (None, 3),
        Some((None, _)) => return,
        Some((Some(ip), after)) => {
            tokio::time::sleep(after).await;
            (Some(ip).filter(|_| qtype == 1), 0)
        }
    };
    let mut out = query.to_vec();
    out[2] = 0x81; // a response, recursion desired
    out[3] = 0x80 | rcode; // recursion available
    out[4..12].copy_from_slice(&[0, 1, 0, u8::from(address.is_some()), 0, 0, 0, 0]);
    if let Some(ip) = address {
        // The question's name (a pointer to offset 12), A, IN, a TTL of 0, four bytes.
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    let _ = socket.send_to(&out, to).await;
}

/// A query's name, where its question ends, and its type.
fn question(packet: &[u8]) -> Option<(String, usize, u16)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        let label = packet.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    Some((labels.join("."), at + 4, qtype))
}

/// The control plane running as `aic-control-plane serve` on a test environment's settings,
/// resolving names through a [`StubDns`]; killed when dropped.
#[derive(Debug)]
pub struct ControlPlaneProcess {
    /// Its base URL.
    pub api: String,
    child: Child,
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestEnv {
    /// Starts the control plane as a process on this environment's database and broker
    /// namespace, its name lookups answered by `dns` only; waits until it is ready.
    pub async fn control_plane_resolving_with(&self, dns: &StubDns) -> ControlPlaneProcess {
        self.control_plane_resolving_with_env(dns, &[]).await
    }

    /// The same, with the settings `env` over this environment's (`AIC_DATABASE_POOL_SIZE`…).
    pub async fn control_plane_resolving_with_env(
        &self,
        dns: &StubDns,
        env: &[(&str, &str)],
    ) -> ControlPlaneProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // The bind is the namespace's own: the shared /etc/resolv.conf is not touched.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
            .arg(dns.dir.join("resolv.conf"))
            .arg(Self::binary("aic-control-plane"))
            .arg("serve")
            .envs(self.control_plane_env())
            .envs(env.iter().copied())
            .env("AIC_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare runs");
        let process = ControlPlaneProcess {
            api: format!("http://127.0.0.1:{port}"),
            child,
        };
        let ready = format!("{}/readyz", process.api);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = reqwest::get(&ready).await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "the control plane never got ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
