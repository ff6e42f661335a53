//! Execution requests as tests publish them by hand (to the broker, not through the API), and a
//! run of one bad request among good ones, for tests of what one bad request may not break.

use super::TestEnv;
use aic_proto::topology::EXECUTION_REQUEST_TYPE;
use lapin::BasicProperties;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The properties of a request answered on `reply_to`, with a correlation id.
pub fn reply_properties(reply_to: &str) -> BasicProperties {
    aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(reply_to.into())
        .with_correlation_id("corr-1".into())
}

/// Checks that the bad request's result came, failed with `code`, and says each of `needles`.
pub fn assert_failed_with(failed: Option<Value>, code: &str, needles: &[&str]) {
    let failed = failed.expect("a failure result for the bad request");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], code, "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or("");
    for needle in needles {
        assert!(message.contains(needle), "no {needle:?} in {failed}");
    }
}

impl TestEnv {
    /// An `ExecutionRequestV1` of this tenant's `automation` with `parameters`: its new
    /// execution id and body.
    pub fn request(&self, automation: &str, parameters: Value) -> (String, Vec<u8>) {
        let id = uuid::Uuid::now_v7().to_string();
        let body = json!({"version": 1, "execution_id": id, "tenant_id": self.tenant.to_string(), "automation_id": automation, "parameters": parameters});
        (id, serde_json::to_vec(&body).expect("json"))
    }

    /// Publishes a request `body` straight to the broker, answered on `replies`, and waits up to
    /// 10 s for its result there.
    pub async fn ask(&self, replies: &mut super::Listener, body: &[u8]) -> Value {
        self.publish_raw(body, reply_properties(&replies.queue))
            .await;
        replies
            .next_json(Duration::from_secs(10))
            .await
            .expect("a result on the reply queue")
    }

    /// Publishes `good` good requests and, in their middle (so that it would share one of their
    /// ledger batches), one with `bad` parameters; returns the bad one's result, if any came
    /// within 30 s, and how many good ones succeeded.
    pub async fn one_bad_among_good(
        &self,
        automation: &str,
        bad: Value,
        good: usize,
    ) -> (Option<Value>, usize) {
        let mut replies = self.listen("", "").await;
        let (bad, bad_body) = self.request(automation, bad);
        for i in 0..good {
            let (_, body) = self.request(
                automation,
                json!({"LastName": format!("Good{i}"), "Company": "Acme"}),
            );
            self.publish_raw(&body, reply_properties(&replies.queue))
                .await;
            if i == good / 2 {
                self.publish_raw(&bad_body, reply_properties(&replies.queue))
                    .await;
            }
        }
        let mut failed = None;
        let mut succeeded = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while (failed.is_none() || succeeded < good) && Instant::now() < deadline {
            let Some(r) = replies.next_json(Duration::from_secs(10)).await else {
                break;
            };
            if r["execution_id"] == bad.as_str() {
                failed = Some(r);
            } else if r["status"] == "succeeded" {
                succeeded += 1;
            }
        }
        (failed, succeeded)
    }
}
