//! Calls made while a service comes back: asked again until they answer as they should.

use super::TestEnv;
use reqwest::Method;
use serde_json::Value;
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
}
