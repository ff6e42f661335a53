//! Where an execution's time goes inside the worker processes, read from their own `/metrics`
//! before and after a scenario: the mean time from delivery to published result, the mean
//! vendor call, and for each ledger statement an execution's mean wait for it, the mean group
//! commit and how many executions shared it. An execution waits for the batch in flight and
//! then its own — or, when a burst arrives at once, for several.

use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The ledger's statements, in the order an execution runs them.
const STATEMENTS: [&str; 3] = ["begin", "mark", "finish"];

/// A worker's admin address that is free now: the bench hands it to the worker it starts, so
/// that it can read that worker's `/metrics`.
pub fn free_admin_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// Where PostgreSQL's write-ahead log stands, in bytes: the difference over a scenario is what
/// the whole server wrote for it — a count the machine's speed does not move, unlike CPU time
/// (other databases' writes on the same server count too). `None` if it cannot be read.
pub async fn wal_position(pool: &deadpool_postgres::Pool) -> Option<u64> {
    let client = pool.get().await.ok()?;
    let row = client
        .query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8",
            &[],
        )
        .await
        .ok()?;
    u64::try_from(row.try_get::<_, i64>(0).ok()?).ok()
}

/// The WAL written between two [`wal_position`]s per finished execution (at least one).
pub fn wal_per_execution(before: Option<u64>, after: Option<u64>, finished: usize) -> Option<f64> {
    before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / finished.max(1) as f64)
}

/// The histogram sums and counts this module reads, added over the workers.
#[derive(Debug, Default, Clone)]
pub struct Snapshot(HashMap<String, f64>);

/// Reads every worker's `/metrics`; `None` if one does not answer.
pub async fn snapshot(admins: &[SocketAddr]) -> Option<Snapshot> {
    let http = reqwest::Client::new();
    let mut totals = Snapshot::default();
    for admin in admins {
        let text = http
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        totals.add(&text);
    }
    Some(totals)
}

impl Snapshot {
    /// Adds one worker's `/metrics` text.
    fn add(&mut self, text: &str) {
        for (key, value) in read(text) {
            *self.0.entry(key).or_default() += value;
        }
    }
}

/// The workers' infrastructure steps retried in place, every step's.
const RETRIED_IN_PLACE: &str = "aic_infrastructure_retries_total";
/// Executions by outcome, of which [`REPLAYED`] is read.
const EXECUTIONS: &str = "aic_executions_total";
/// Redeliveries answered from the ledger (`aic_executions_total{outcome="replayed"}`).
const REPLAYED: &str = "aic_executions_total/replayed";
/// Deliveries the broker flagged as redelivered, answered from the ledger or run again.
const REDELIVERED: &str = "aic_deliveries_redelivered_total";
/// Connections the workers opened to the vendor (one per call beyond the idle ones kept, over
/// HTTP/1.1).
const CONNECTIONS_OPENED: &str = "aic_vendor_connections_opened_total";

/// The samples [`between`] needs, keyed as `<sample>` or `<sample>/<statement>`, each summed
/// over its label sets.
fn read(text: &str) -> Vec<(String, f64)> {
    const SAMPLES: [&str; 10] = [
        "aic_execution_duration_seconds_sum",
        "aic_execution_duration_seconds_count",
        "aic_vendor_request_duration_seconds_sum",
        "aic_vendor_request_duration_seconds_count",
        "aic_result_publish_duration_seconds_sum",
        "aic_result_publish_duration_seconds_count",
        "aic_ledger_batch_duration_seconds_sum",
        "aic_ledger_batch_duration_seconds_count",
        "aic_ledger_wait_seconds_sum",
        "aic_ledger_wait_seconds_count",
    ];
    const BATCH_SIZE: &str = "aic_ledger_batch_executions_sum";
    text.lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let value: f64 = value.parse().ok()?;
            match name {
                RETRIED_IN_PLACE | REDELIVERED | CONNECTIONS_OPENED => {
                    return Some((name.to_string(), value));
                }
                EXECUTIONS if labels.contains(r#"outcome="replayed""#) => {
                    return Some((REPLAYED.to_string(), value));
                }
                _ if !SAMPLES.contains(&name) && name != BATCH_SIZE => return None,
                _ => {}
            }
            let key = match STATEMENTS
                .iter()
                .find(|s| labels.contains(&format!("statement=\"{s}\"")))
            {
                Some(statement) => format!("{name}/{statement}"),
                None => name.to_string(),
            };
            Some((key, value))
        })
        .collect()
}

/// One ledger statement's group commits during a scenario.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Batches {
    pub statement: &'static str,
    pub batches: f64,
    /// Mean time of one batch, connection wait and commit included, ms.
    pub mean_ms: f64,
    /// Mean executions per batch.
    pub mean_executions: f64,
    /// Mean wait of one execution for the statement, ms (`None` from a worker that does not
    /// report it).
    pub wait_ms: Option<f64>,
}

/// Means over one scenario, from the workers' own metrics.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Stages {
    /// From the delivery's arrival in the worker to its result confirmed by the broker, ms.
    pub in_worker_ms: Option<f64>,
    /// One vendor call, send to answer, ms.
    pub vendor_call_ms: Option<f64>,
    /// One result's publish until the broker confirmed it, ms.
    pub publish_ms: Option<f64>,
    pub ledger: Vec<Batches>,
    /// Deliveries the broker flagged as redelivered (`None` from a worker that does not report
    /// them): each one's result is published again, whether answered from the ledger or run.
    pub redelivered: Option<f64>,
    /// Of those, the ones answered from the ledger (`None` from a worker that does not report
    /// it).
    pub replayed: Option<f64>,
    /// Ledger writes and publishes the workers retried in place after PostgreSQL or RabbitMQ
    /// failed them (`None` from a worker that does not report it).
    pub retried_in_place: Option<f64>,
    /// Connections the workers opened to the vendor (`None` from a worker that does not report
    /// them).
    pub vendor_connections_opened: Option<f64>,
}

impl Stages {
    /// What the workers did twice or again, if anything: redeliveries (each one's result
    /// published again), those answered from the ledger, and steps retried in place (their
    /// warnings say why).
    pub fn redone(&self) -> Option<String> {
        let (redelivered, replayed, retried) = (
            self.redelivered.unwrap_or_default(),
            self.replayed.unwrap_or_default(),
            self.retried_in_place.unwrap_or_default(),
        );
        (redelivered > 0.0 || replayed > 0.0 || retried > 0.0).then(|| {
            format!(
                "the worker(s) took {redelivered:.0} redelivered requests (their results \
                 published again), answered {replayed:.0} executions from the ledger and \
                 retried {retried:.0} ledger writes or publishes in place"
            )
        })
    }
}

/// What happened between two snapshots of the same workers.
pub fn between(before: &Snapshot, after: &Snapshot) -> Stages {
    let delta = |key: &str| {
        after.0.get(key).copied().unwrap_or_default() - before.0.get(key).copied().unwrap_or(0.0)
    };
    let mean_ms = |name: &str| {
        let count = delta(&format!("{name}_count"));
        (count > 0.0).then(|| delta(&format!("{name}_sum")) * 1000.0 / count)
    };
    // A count only where the workers report it.
    let count = |key: &str| after.0.contains_key(key).then(|| delta(key));
    Stages {
        redelivered: count(REDELIVERED),
        replayed: count(REPLAYED),
        retried_in_place: count(RETRIED_IN_PLACE),
        vendor_connections_opened: count(CONNECTIONS_OPENED),
        in_worker_ms: mean_ms("aic_execution_duration_seconds"),
        vendor_call_ms: mean_ms("aic_vendor_request_duration_seconds"),
        publish_ms: mean_ms("aic_result_publish_duration_seconds"),
        ledger: STATEMENTS
            .iter()
            .filter_map(|statement| {
                let batches = delta(&format!(
                    "aic_ledger_batch_duration_seconds_count/{statement}"
                ));
                (batches > 0.0).then(|| Batches {
                    statement,
                    batches,
                    mean_ms: delta(&format!(
                        "aic_ledger_batch_duration_seconds_sum/{statement}"
                    )) * 1000.0
                        / batches,
                    mean_executions: delta(&format!("aic_ledger_batch_executions_sum/{statement}"))
                        / batches,
                    wait_ms: {
                        let waits = delta(&format!("aic_ledger_wait_seconds_count/{statement}"));
                        (waits > 0.0).then(|| {
                            delta(&format!("aic_ledger_wait_seconds_sum/{statement}")) * 1000.0
                                / waits
                        })
                    },
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_taken_over_the_scenario_and_its_statements() {
        let before = "aic_execution_duration_seconds_sum{app=\"salesforce\",outcome=\"succeeded\"} 1\n\
            aic_execution_duration_seconds_count{app=\"salesforce\",outcome=\"succeeded\"} 100\n\
            aic_ledger_batch_duration_seconds_sum{statement=\"begin\"} 0.5\n\
            aic_ledger_batch_duration_seconds_count{statement=\"begin\"} 10\n\
            aic_ledger_batch_executions_sum{statement=\"begin\"} 100\n";
        let after = "aic_execution_duration_seconds_sum{app=\"salesforce\",outcome=\"succeeded\"} 2\n\
            aic_execution_duration_seconds_sum{app=\"salesforce\",outcome=\"failed\"} 1\n\
            aic_execution_duration_seconds_count{app=\"salesforce\",outcome=\"succeeded\"} 250\n\
            aic_execution_duration_seconds_count{app=\"salesforce\",outcome=\"failed\"} 50\n\
            aic_execution_duration_seconds_bucket{app=\"salesforce\",outcome=\"failed\",le=\"1\"} 50\n\
            aic_ledger_batch_duration_seconds_sum{statement=\"begin\"} 0.7\n\
            aic_ledger_batch_duration_seconds_count{statement=\"begin\"} 20\n\
            aic_ledger_batch_executions_sum{statement=\"begin\"} 300\n\
            aic_ledger_wait_seconds_sum{statement=\"begin\"} 1.5\n\
            aic_ledger_wait_seconds_count{statement=\"begin\"} 200\n";
        let snap = |t: &str| {
            let mut s = Snapshot::default();
            s.add(t);
            s
        };
        let s = between(&snap(before), &snap(after));
        // 2 s over 200 executions; 0.2 s over 10 batches of 200 executions.
        assert_eq!(s.in_worker_ms.map(|v| (v * 1e6).round() / 1e6), Some(10.0));
        assert_eq!(s.vendor_call_ms, None);
        assert_eq!(s.ledger.len(), 1);
        assert_eq!(s.ledger[0].statement, "begin");
        assert_eq!(s.ledger[0].batches, 10.0);
        assert!((s.ledger[0].mean_ms - 20.0).abs() < 1e-9);
        assert!((s.ledger[0].mean_executions - 20.0).abs() < 1e-9);
        // 1.5 s over the 200 executions that waited (none were counted before).
        assert!((s.ledger[0].wait_ms.expect("reported") - 7.5).abs() < 1e-9);
    }

    #[test]
    fn replays_and_retries_in_place_are_counted_where_the_workers_report_them() {
        let snap = |t: &str| {
            let mut s = Snapshot::default();
            s.add(t);
            s
        };
        let before = "aic_executions_total{action=\"unknown\",app=\"unknown\",outcome=\"replayed\"} 1\n\
            aic_executions_total{action=\"create_lead\",app=\"salesforce\",outcome=\"succeeded\"} 9\n\
            aic_infrastructure_retries_total{step=\"delivery\"} 0\n\
            aic_infrastructure_retries_total{step=\"publish_result\"} 2\n\
            aic_deliveries_redelivered_total 1\n\
            aic_vendor_connections_opened_total 256\n";
        let after = "aic_executions_total{action=\"unknown\",app=\"unknown\",outcome=\"replayed\"} 4\n\
            aic_executions_total{action=\"create_lead\",app=\"salesforce\",outcome=\"succeeded\"} 90\n\
            aic_infrastructure_retries_total{step=\"delivery\"} 1\n\
            aic_infrastructure_retries_total{step=\"publish_result\"} 7\n\
            aic_deliveries_redelivered_total 5\n\
            aic_vendor_connections_opened_total 300\n";
        let s = between(&snap(before), &snap(after));
        assert_eq!(s.replayed, Some(3.0));
        assert_eq!(s.retried_in_place, Some(6.0));
        assert_eq!(s.redelivered, Some(4.0));
        assert_eq!(s.vendor_connections_opened, Some(44.0));
        // An older worker, without the series: not known, rather than none.
        let s = between(
            &Snapshot::default(),
            &snap("aic_ledger_wait_seconds_count 1\n"),
        );
        assert_eq!(
            (s.redelivered, s.replayed, s.retried_in_place),
            (None, None, None)
        );
        assert_eq!(s.vendor_connections_opened, None);
        assert_eq!(s.redone(), None);
    }
}
