//! The control plane's own calls on a saved connection — a draft's test run, the field picker,
//! a connection test — take a slot of the connection's cap on calls at once as the workers'
//! executions do (a lease in `connection_leases`): beside a busy worker, an admin's calls never
//! put one call more in flight at the vendor than the cap allows — the connection's own, or
//! without one the workers' setting. A call waits for a slot while saying it wants one, and is
//! refused (429 `connection_busy`) when none comes free.

use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn lead(i: usize) -> Value {
    json!({"LastName": format!("L{i}"), "Company": "Acme"})
}

/// The number of leases the control plane's calls hold on the tenant's connections with
/// `slots` slots.
async fn calls_leasing(env: &TestEnv, slots: i32) -> i64 {
    env.pool
        .get()
        .await
        .expect("postgres")
        .query_one(
            "SELECT count(*) FROM connection_leases \
             WHERE worker_id LIKE 'control-plane/%' AND slots = $1 AND wanted = 1",
            &[&slots],
        )
        .await
        .expect("leases")
        .get(0)
}

/// Waits until the control plane's calls hold no lease (each is given back once answered).
async fn until_given_back(env: &TestEnv) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls_leasing(env, 1).await + calls_leasing(env, 0).await > 0 {
        assert!(
            Instant::now() < deadline,
            "a call's lease was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Another worker's lease holding the one slot of `conn` for `secs`, recording the `cap` it
/// keeps to (`None`: as a worker from before the column).
async fn another_worker_holds(env: &TestEnv, conn: uuid::Uuid, secs: f64, cap: Option<i32>) {
    env.pool
        .get()
        .await
        .expect("postgres")
        .execute(
            "INSERT INTO connection_leases (connection_id, worker_id, slots, wanted, cap, expires_at) \
             VALUES ($1, 'another-worker', 1, 1, $3, now() + make_interval(secs => $2)) \
             ON CONFLICT (connection_id, worker_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            &[&conn, &secs, &cap],
        )
        .await
        .expect("a worker's lease");
}

/// Checks that a call (a test run, a connection test) was answered with `"ok": true`.
fn assert_ok((status, answer): (StatusCode, Value)) {
    assert_eq!(
        (status, &answer["ok"]),
        (StatusCode::OK, &json!(true)),
        "{answer}"
    );
}

/// Checks that a call was refused `connection_busy` with `Retry-After: 1`, its message saying
/// `cap`.
fn assert_busy((status, after, err): (StatusCode, Option<u64>, Value), cap: &str) {
    assert_eq!(
        (status, err["error"]["code"].as_str(), after),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("connection_busy"),
            Some(1)
        ),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(cap), "{message}");
}

#[tokio::test]
async fn an_admins_calls_beside_a_busy_worker_keep_to_a_cap_of_one() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    env.cap_connections(1).await;
    beside_a_busy_worker(&env, &automation, "a cap of 1").await;
    env.stop().await;
}

/// A worker with a backlog of executions on a connection capped at one call at once: an admin's
/// connection test waits for the call in flight, not for the backlog to drain — and the vendor
/// still never has two calls at once.
#[tokio::test]
async fn an_admins_call_goes_before_a_workers_backlog() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    env.cap_connections(1).await;
    env.sandbox.set_latency(Duration::from_millis(250));
    let mut runs = Vec::new();
    // 15 s of calls, one at a time.
    for i in 0..60 {
        runs.push(env.enqueue(&automation, lead(i)).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, view) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    let conn = view["connection_id"].as_str().expect("connection");
    let started = Instant::now();
    let (status, tested) = env
        .call(Method::POST, &format!("/v1/connections/{conn}/test"), None)
        .await;
    let waited = started.elapsed();
    assert_ok((status, tested));
    println!(
        "a connection test beside a backlog of 60 executions of 250 ms under a cap of 1: answered in {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the test waited {waited:?}, as for the backlog"
    );
    for id in &runs {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let most = env.sandbox.state.faults.max_in_flight();
    assert_eq!(most, 1, "calls at once at the vendor under a cap of 1");
    until_given_back(&env).await;
    env.stop().await;
}

/// The cap of a connection without its own is the workers' setting, which the control plane
/// learns from their leases.
#[tokio::test]
async fn without_its_own_cap_an_admins_calls_keep_to_the_workers_setting() {
    let env = TestEnv::start_with(Options {
        connection_concurrency: 1,
        ..Options::default()
    })
    .await;
    let automation = env.lead_automation().await;
    beside_a_busy_worker(&env, &automation, "the workers' setting of 1").await;
    env.stop().await;
}

/// Six executions of 250 ms for the worker and, while it goes through them, three test runs
/// and the field picker: all succeed, and the vendor never has 2 calls at once.
async fn beside_a_busy_worker(env: &TestEnv, automation: &str, cap: &str) {
    env.sandbox.set_latency(Duration::from_millis(250));
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(env.enqueue(automation, lead(i)).await);
    }
    // While the worker goes through them one at a time: three test runs and the field picker.
    let test = format!("/v1/automations/{automation}/test");
    let body = || Some(json!({"parameters": lead(99)}));
    let fields = format!("/v1/automations/{automation}/fields");
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        env.call(Method::POST, &test, body()),
        env.call(Method::POST, &test, body()),
        env.call(Method::POST, &test, body()),
        env.call(Method::GET, &fields, None),
    );
    let admin = started.elapsed();
    for answer in [a, b, c] {
        assert_ok(answer);
    }
    assert_eq!(d.0, StatusCode::OK, "{}", d.1);
    for id in &runs {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let most = env.sandbox.state.faults.max_in_flight();
    println!(
        "6 executions and 4 admin calls of 250 ms under {cap}: the admin's done in {admin:?}, most at once at the vendor {most}"
    );
    assert_eq!(most, 1, "calls at once at the vendor under {cap}");
    until_given_back(env).await;
}

#[tokio::test]
async fn a_call_waits_for_a_slot_and_is_refused_when_none_comes_free() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    env.cap_connections(1).await;
    let client = env.pool.get().await.expect("postgres");
    let conn: uuid::Uuid = client
        .query_one("SELECT id FROM connections", &[])
        .await
        .expect("the connection")
        .get(0);
    // Another worker holds the one slot: for 2 s, then for a minute.
    let hold = |secs: f64| another_worker_holds(&env, conn, secs, None);
    hold(2.0).await;
    let conn_test = format!("/v1/connections/{conn}/test");
    let started = Instant::now();
    let (status, tested) = env.call(Method::POST, &conn_test, None).await;
    let waited = started.elapsed();
    assert_ok((status, tested));
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(10)).contains(&waited),
        "the test waited {waited:?} for the slot the other lease held 2 s"
    );
    until_given_back(&env).await;

    hold(60.0).await;
    let before = env.sandbox.requests().len();
    let test = format!("/v1/automations/{automation}/test");
    let fields = format!("/v1/automations/{automation}/fields");
    let started = Instant::now();
    let calls = async {
        tokio::join!(
            env.call_retry_after(Method::POST, &test, Some(json!({"parameters": lead(1)}))),
            env.call_retry_after(Method::GET, &fields, None),
            env.call_retry_after(Method::POST, &conn_test, None),
        )
    };
    let watch = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        calls_leasing(&env, 0).await
    };
    let ((a, b, c), wanting) = tokio::join!(calls, watch);
    assert_eq!(wanting, 3, "each waiting call says it wants a slot");
    for answer in [a, b, c] {
        assert_busy(answer, "1 call(s) at once (its max_concurrency)");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        env.sandbox.requests().len(),
        before,
        "no call reached the vendor"
    );
    until_given_back(&env).await;
    env.stop().await;
}

/// A connection without its own cap, a worker's lease recording its setting of 1 and holding
/// the slot: the connection test waits, then is refused naming the workers' setting.
#[tokio::test]
async fn without_its_own_cap_a_call_is_refused_naming_the_workers_setting() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env
        .salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    let conn = conn["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/connections/{conn}/test");
    // No worker holds a lease: nothing to keep to, the call goes at once.
    let (status, tested) = env.call(Method::POST, &path, None).await;
    assert_ok((status, tested));
    until_given_back(&env).await;
    let conn_id = conn.parse().expect("a uuid");
    another_worker_holds(&env, conn_id, 60.0, Some(1)).await;
    let before = env.sandbox.requests().len();
    assert_busy(
        env.call_retry_after(Method::POST, &path, None).await,
        "1 call(s) at once (the workers' AIC_WORKER_CONNECTION_CONCURRENCY",
    );
    assert_eq!(
        env.sandbox.requests().len(),
        before,
        "no call reached the vendor"
    );
    until_given_back(&env).await;
    env.stop().await;
}

/// More connection tests at once than the control plane has database connections (8 here):
/// none holds one through the vendor's answer (taking the slot needs one of its own), so every
/// one is answered rather than left waiting for the pool.
#[tokio::test]
async fn more_connection_tests_at_once_than_database_connections_are_all_answered() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env
        .salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    env.sandbox.set_latency(Duration::from_millis(300));
    let path = format!("/v1/connections/{}/test", conn["id"].as_str().expect("id"));
    let tests = (0..12).map(|_| env.call(Method::POST, &path, None));
    for answer in futures_util::future::join_all(tests).await {
        assert_ok(answer);
    }
    until_given_back(&env).await;
    env.stop().await;
}
