//! Runs through an outage: calls asked again until a service answers as it should, the run
//! seen under way, its executions' final states and the retries the workers counted.

use super::TestEnv;
use reqwest::Method;
use serde_json::Value;
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sandbox.requests_to(path).len() < n {
            assert!(Instant::now() < deadline, "the run did not get going");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
