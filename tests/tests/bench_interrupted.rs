//! `aic-bench` stopped in the middle of a row, by SIGTERM (what `kill` and a CI's time limit
//! send; Ctrl-C's SIGINT takes the same path): it says so, writes no report, exits 130, and
//! leaves nothing behind on the shared services — no worker process, no database, no queue.
//! So it does, exiting 1, when RabbitMQ closes its own connection (a broker fault).

use aic_tests::harness::{amqp_url, database_exists};
use aic_tests::private::PrivateRabbit;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_interrupted_benchmark_stops_its_workers_and_removes_its_database_and_queues() {
    let run = Run::start(&amqp_url()).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &run.bench.id().to_string()])
            .status()
            .expect("kill runs")
            .success()
    );
    run.ended(130, "aic-bench: interrupted: no report written")
        .await;
}

/// RabbitMQ closing the benchmark's own connection mid-row (its quorum-queue segment writer
/// crashed so once): the run says so and why, writes no report, exits 1, and leaves nothing —
/// rather than panic on the next channel it asks for, or wait for ever.
#[tokio::test]
async fn a_benchmark_whose_connection_the_broker_closes_says_so_and_removes_what_it_set_up() {
    let rabbit = PrivateRabbit::start().await;
    let run = Run::start(&rabbit.url()).await;
    rabbit.ctl(&["close_all_connections", "a broker fault, in a test"]);
    let said = "aic-bench: RabbitMQ closed the benchmark's own connection";
    run.ended(1, said).await;
}

/// A benchmark of the slow row, far too long to end by itself, in the middle of that row (its
/// worker consuming); on the broker at `url`.
struct Run {
    bench: std::process::Child,
    lines: mpsc::Receiver<String>,
    said: Vec<String>,
    json: std::path::PathBuf,
    url: String,
    database: String,
    namespace: String,
    workers: Vec<u32>,
}

impl Run {
    async fn start(url: &str) -> Self {
        let json = std::env::temp_dir().join(format!("aic-bench-{}.json", uuid::Uuid::new_v4()));
        // 50 calls in flight of 500 ms each: 100,000 executions would take over 15 minutes.
        let mut bench = Command::new(env!("CARGO_BIN_EXE_aic-bench"))
            .args(["--only", "slow", "--n", "100000", "--slow-in-flight", "50"])
            .args(["--slow-latency-ms", "500", "--json"])
            .arg(&json)
            .env("AIC_TEST_AMQP_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aic-bench starts");
        let (lines_tx, lines) = mpsc::channel();
        let stderr = bench.stderr.take().expect("its standard error");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut said = Vec::new();
        let (database, namespace) = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("aic-bench never said where it runs: {said:?}"));
            if let Some(rest) = line.strip_prefix("aic-bench: running in database ") {
                let (db, queues) = rest.split_once(" and on queues ").expect("its queues");
                break (db.to_string(), queues.trim_end_matches(".*").to_string());
            }
            said.push(line);
        };
        let workers = wait_for_children(bench.id(), "aic-worker");
        let amqp = broker(url).await;
        let executions = format!("{namespace}.executions");
        let deadline = Instant::now() + Duration::from_secs(60);
        while consumers(&amqp, &executions).await != Some(1) {
            assert!(Instant::now() < deadline, "the worker never consumed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            bench,
            lines,
            said,
            json,
            url: url.to_string(),
            database,
            namespace,
            workers,
        }
    }

    /// Checks that the run stopped within 60 s with exit `code`, a line of its standard error
    /// starting with `line`, no report and no panic printed, and that nothing it set up is left.
    async fn ended(mut self, code: i32, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.bench.try_wait().expect("its status") {
                break status;
            }
            assert!(Instant::now() < deadline, "aic-bench did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        let said: Vec<String> = self.said.into_iter().chain(self.lines.try_iter()).collect();
        assert_eq!(status.code(), Some(code), "{said:?}");
        let told = said.iter().find(|l| l.starts_with(line));
        println!(
            "{}",
            told.unwrap_or_else(|| panic!("no {line:?} in {said:?}"))
        );
        assert!(!self.json.exists(), "a report was written");
        assert!(
            !said.iter().any(|l| l.contains("panicked")),
            "a panic was printed: {said:?}"
        );

        for pid in self.workers {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            assert_ne!(comm.trim(), "aic-worker", "worker {pid} still runs");
        }
        let database = self.database;
        assert!(
            !database_exists(&database).await,
            "database {database} is left"
        );
        let amqp = broker(&self.url).await;
        let namespace = self.namespace;
        for queue in ["executions", "executions.dlq"] {
            let queue = format!("{namespace}.{queue}");
            assert_eq!(
                consumers(&amqp, &queue).await,
                None,
                "queue {queue} is left"
            );
        }
    }
}

/// A connection of the test's own to the broker at `url`.
async fn broker(url: &str) -> lapin::Connection {
    let url = secrecy::SecretString::from(url.to_string());
    aic_core::amqp::connect(&url, "aic-test-bench-interrupted")
        .await
        .expect("rabbitmq")
}

/// The consumers of `queue`, `None` when there is no such queue.
async fn consumers(amqp: &lapin::Connection, queue: &str) -> Option<u32> {
    // A passive declare of a missing queue closes its channel: one channel each time.
    let ch = amqp.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .ok()
    .map(|q| q.consumer_count())
}

/// The ids of `parent`'s child processes named `name`, once there is one (up to two minutes:
/// the benchmark sets its environment up first).
fn wait_for_children(parent: u32, name: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let children: Vec<u32> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // `pid (comm) state ppid …`; the name may hold spaces and brackets.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(") ").is_some_and(|(head, rest)| {
                        head.ends_with(&format!("({name}"))
                            && rest.split_whitespace().nth(1) == Some(parent.to_string().as_str())
                    })
                })
            })
            .collect();
        if !children.is_empty() {
            return children;
        }
        assert!(
            Instant::now() < deadline,
            "no {name} was started by aic-bench"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
