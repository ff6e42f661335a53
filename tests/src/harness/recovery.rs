//! Runs through an outage: calls asked again until a service answers as it should, the run
//! seen under way, its executions' final states and the retries the workers counted.

use super::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

impl TestEnv {
    /// Calls the API with the admin token every 500 ms until it answers `status` (a service
    /// back after an outage); panics, with the last answer, past `within`.
    pub async fn call_until(
        &self,
        status: u16,
        within: Duration,
        (method, path, body): (Method, &str, Option<Value>),
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (got, answer) = self.call(method.clone(), path, body.clone()).await;
            if got == status {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path}: still {got} after {within:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the vendor stand-in has taken `n` requests to `path` (a run under way);
    /// panics past 30 s.
    pub async fn wait_for_vendor_calls(&self, path: &str, n: usize) {
        self.sandbox.until_requests_to(path, n).await;
    }

    /// Starts a run for an outage to interrupt: `n` leads of a new automation enqueued against
    /// a vendor answering in `latency`, returned — the automation and the execution ids — once a
    /// fifth of them have reached the vendor.
    pub async fn run_under_way(&self, n: usize, latency: Duration) -> (String, Vec<String>) {
        let lead = self.lead_automation().await;
        self.sandbox.set_latency(latency);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let parameters = json!({"LastName": format!("Run{i}"), "Company": "C"});
            ids.push(self.enqueue(&lead, parameters).await);
        }
        self.wait_for_vendor_calls("/sobjects/Lead/", n / 5).await;
        (lead, ids)
    }

    /// Waits for the executions `ids` of a lead run to finish, and checks that each ran once:
    /// succeeded, or — its create's answer lost to an outage — `unknown_outcome`, no lead sent
    /// twice, every create without a success reported in doubt.
    pub async fn accounted_for(&self, ids: &[String]) -> Tally {
        let counts = self.final_statuses(ids).await;
        let tally = Tally {
            succeeded: counts.get("succeeded").copied().unwrap_or(0),
            unknown: counts.get("unknown_outcome").copied().unwrap_or(0),
            creates: self.sandbox.requests_to("/sobjects/Lead/").len(),
        };
        assert_eq!(
            tally.succeeded + tally.unknown,
            ids.len(),
            "every execution finished: {counts:?}"
        );
        assert!(tally.creates <= ids.len(), "a lead sent twice: {tally:?}");
        assert!(
            tally.creates.saturating_sub(tally.succeeded) <= tally.unknown,
            "a create without a success not reported unknown_outcome: {tally:?}"
        );
        tally
    }

    /// How many of the executions `ids` reached each final status (each waited for as
    /// [`TestEnv::wait_final`] does).
    pub async fn final_statuses(&self, ids: &[String]) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in ids {
            let done = self.wait_final(id).await;
            *counts
                .entry(done["status"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        counts
    }
}

/// The worker's `aic_infrastructure_retries_total` in its metrics text, by step.
pub fn infrastructure_retries(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("aic_infrastructure_retries_total{step=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(step, n)| (step.to_string(), n.parse().expect("a count")))
        .collect()
}

/// What a run through an outage came to ([`TestEnv::accounted_for`]).
#[derive(Debug)]
pub struct Tally {
    /// Executions that succeeded.
    pub succeeded: usize,
    /// Executions whose create may have landed, reported in doubt.
    pub unknown: usize,
    /// Creates the vendor received.
    pub creates: usize,
}

/// `GET {base}/readyz` of a service, answered within 5 s (a probe must not wait on what it
/// reports): its status and body.
pub async fn readiness(base: &str) -> (u16, String) {
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let answer = reqwest::get(format!("{base}/readyz"))
            .await
            .expect("readyz");
        (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        )
    });
    answer.await.expect("/readyz answered within 5 s")
}
