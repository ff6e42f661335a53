//! The control plane's API as the tests drive it: calls, refusals, executions, the audit trail
//! and the metrics; `fixtures.rs` sets up the connections and automations they run on.

use super::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

impl TestEnv {
    /// Calls the API with the admin token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.admin_token, method, path, body).await
    }

    /// Calls the API with a given token.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.call_answering(token, method, path, body).await;
        (status, body)
    }

    /// Calls the API with the admin token; the status, the `Retry-After` header in seconds
    /// and the body.
    pub async fn call_retry_after(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<u64>, Value) {
        self.call_answering(&self.admin_token, method, path, body)
            .await
    }

    /// A request to the API as `token`, to send with whatever else it needs.
    pub fn api_request(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
    }

    /// Sends `req` with `body` as JSON, when given: the status, the headers and the body (JSON,
    /// else its text as a string).
    pub async fn exchange(
        req: reqwest::RequestBuilder,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.expect("control plane answers");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn call_answering(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<u64>, Value) {
        let req = self.api_request(token, method, path);
        let (status, headers, body) = Self::exchange(req, body).await;
        let after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (status, after, body)
    }

    /// The automation's draft parameter table with its parameter `from` renamed `to`.
    pub async fn parameters_renamed(&self, automation: &str, from: &str, to: &str) -> Value {
        let path = format!("/v1/automations/{automation}");
        let (status, current) = self.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{current}");
        let mut params = current["parameters"].clone();
        for p in params.as_array_mut().expect("parameters") {
            if p["name"] == from {
                p["name"] = json!(to);
            }
        }
        params
    }

    /// Calls the API and checks the call is refused with `status` and error `code`, naming
    /// `field` when one is given; returns the error body.
    pub async fn assert_refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        (status, code, field): (u16, &str, Option<&str>),
    ) -> Value {
        let shown = body.as_ref().map(Value::to_string).unwrap_or_default();
        let (got, err) = self.call(method, path, body).await;
        assert_eq!(got.as_u16(), status, "{path} {shown}: {err}");
        assert_eq!(err["error"]["code"], code, "{path} {shown}: {err}");
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{path} {shown}: {err}");
        }
        err
    }

    /// The audit trail as the admin reads it with `query` (`?action=…`, or empty): its events.
    pub async fn audit_events(&self, query: &str) -> Vec<Value> {
        let (status, page) = self
            .call(Method::GET, &format!("/v1/audit-events{query}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        page["events"].as_array().expect("events").clone()
    }

    /// Calls the API while the execution ledger is locked (`LOCK TABLE executions`), as a
    /// search the database is slow to answer, and checks the call is refused within 30 s naming
    /// `since`, not left waiting; returns the error body.
    pub async fn refused_while_ledger_locked(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut client = self.pool.get().await.expect("a database connection");
        let lock = client.transaction().await.expect("a transaction");
        lock.batch_execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("the ledger locked");
        let refused = self.assert_refused(
            method,
            path,
            body,
            (422, "validation_failed", Some("since")),
        );
        let err = tokio::time::timeout(Duration::from_secs(30), refused)
            .await
            .expect("refused within seconds, not left waiting on the database");
        drop(lock);
        err
    }

    /// Tests a connection (`POST /v1/connections/{id}/test`): the answer, after checking the
    /// call itself succeeded (a refused credential is `ok: false` in a 200, not an HTTP error).
    pub async fn test_connection(&self, id: &str) -> Value {
        let (status, test) = self
            .call(Method::POST, &format!("/v1/connections/{id}/test"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{test}");
        test
    }

    /// The tenant's token `id` as the admin lists it (`GET /v1/tokens`).
    pub async fn listed_token(&self, id: &str) -> Value {
        let (status, list) = self.call(Method::GET, "/v1/tokens", None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array()
            .expect("list")
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {list}"))
    }

    /// The value of the control plane's sample `name` (with its labels, as `/metrics` prints
    /// them) at a scrape.
    pub async fn control_plane_sample(&self, name: &str) -> String {
        let text = reqwest::get(format!("{}/metrics", self.api))
            .await
            .expect("control plane /metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    /// Enqueues over HTTP; returns the execution id.
    pub async fn enqueue(&self, automation: &str, parameters: Value) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/automations/{automation}/executions"),
                Some(json!({"parameters": parameters})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["execution_id"]
            .as_str()
            .expect("execution id")
            .to_string()
    }

    /// Sets every connection's fleet-wide cap on calls in flight (`max_concurrency`) straight in
    /// the database, past what the API allows or after the connection was made.
    pub async fn cap_connections(&self, cap: i32) {
        self.pool
            .get()
            .await
            .expect("postgres")
            .execute("UPDATE connections SET max_concurrency = $1", &[&cap])
            .await
            .expect("set the connections' cap");
    }

    /// Enqueues over HTTP and waits for the final state.
    pub async fn run(&self, automation: &str, parameters: Value) -> Value {
        let id = self.enqueue(automation, parameters).await;
        self.wait_final(&id).await
    }

    /// Polls the API until the execution is final.
    pub async fn wait_final(&self, execution: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .call(Method::GET, &format!("/v1/executions/{execution}"), None)
                .await;
            if status == StatusCode::OK
                && ["succeeded", "failed", "unknown_outcome"]
                    .contains(&body["status"].as_str().unwrap_or(""))
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "execution {execution} not final in 30 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one row `sql` finds in the environment's database: a test's look at what the
    /// services recorded. Panics, naming the statement, when there is not exactly one.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> tokio_postgres::Row {
        let client = self.pool.get().await.expect("a database connection");
        client
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// How many of the environment's database sessions wait on a lock.
    pub async fn waiting_on_locks(&self) -> i64 {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                   AND datname = current_database()";
        self.query_one(sql, &[]).await.get(0)
    }

    /// Waits (up to 5 s) for `n` sessions to queue behind the locks the test holds.
    pub async fn until_waiting(&self, n: i64) {
        let waited = self.waiting_within(n, Duration::from_secs(5)).await;
        assert!(waited, "fewer than {n} waited on the locks");
    }

    /// Whether `n` sessions queue behind the locks the test holds within `within` (for a
    /// session that may as well finish without waiting).
    pub async fn waiting_within(&self, n: i64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.waiting_on_locks().await < n {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Reads the worker's `/metrics`.
    pub async fn metrics(&self) -> String {
        super::workers::metrics_at(&self.http, self.worker_admin.expect("a worker runs")).await
    }
}
