//! Retries due later than the worker waits in process leave it through the delay queues: the
//! delivery is handed to a delay tier (freeing its prefetch slot) and comes back when due, and
//! a stale copy of a handed-off request never runs.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A Slack automation whose first call is answered 429 with `Retry-After: retry_after` seconds,
/// on a worker that waits at most 500 ms in process and honours Retry-After up to a minute.
async fn rate_limited_once(prefetch: u16, retry_after: u64) -> (TestEnv, String) {
    let env = TestEnv::start_with(Options {
        prefetch,
        retry_cap_ms: 60_000,
        retry_inline_max_ms: 500,
        ..Options::default()
    })
    .await;
    let send = env.slack_automation("Notify", "xoxb-fault").await;
    env.sandbox
        .state
        .faults
        .push([Fault::RateLimited { retry_after }]);
    (env, send)
}

/// A ServiceNow Create Incident automation on a worker that waits at most 500 ms in process
/// and honours Retry-After up to a minute.
async fn incident_waiting_briefly() -> (TestEnv, String) {
    let env = TestEnv::start_with(Options {
        retry_cap_ms: 60_000,
        retry_inline_max_ms: 500,
        ..Options::default()
    })
    .await;
    let incident = env.incident_automation().await;
    (env, incident)
}

/// A retry due later than the worker sleeps in-process leaves through the delay queues: its
/// prefetch slot is freed at once (with a prefetch of 1, a second execution finishes meanwhile)
/// and the retry runs no earlier than the vendor's Retry-After, after several hops.
#[tokio::test]
async fn a_long_retry_after_leaves_the_worker_through_the_delay_queues() {
    let (env, send) = rate_limited_once(1, 3).await;
    let started = Instant::now();
    let parked = env
        .enqueue(&send, json!({"channel": "#general", "text": "later"}))
        .await;
    while env.sandbox.requests_to("chat.postMessage").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "no first call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another connection: the parked one's connection is cooling down, which holds its calls.
    let other = env.slack_automation("Notify elsewhere", "xoxb-other").await;
    let quick = env
        .run(&other, json!({"channel": "#general", "text": "now"}))
        .await;
    let quick_after = started.elapsed();
    let done = env.wait_final(&parked).await;
    let parked_after = started.elapsed();
    println!(
        "Retry-After 3 s with a 500 ms in-process limit: the other execution finished after {quick_after:?}, the parked one after {parked_after:?} ({} calls)",
        done["result"]["attempts"]
    );
    assert_eq!(quick["status"], "succeeded", "{quick}");
    assert!(
        quick_after < Duration::from_millis(2_500),
        "the parked execution held the only prefetch slot: {quick_after:?}"
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["attempts"], 2, "{done}");
    assert!(
        parked_after >= Duration::from_millis(2_950),
        "ran before Retry-After: {parked_after:?}"
    );
    assert_eq!(
        env.sandbox.requests_to("chat.postMessage").len(),
        3,
        "one 429, its retry, the other message"
    );
    // Hops of 1 s over a 3 s wait, not a loop through the broker for the part of it between
    // the 500 ms the worker waits in process and the shortest tier's 1 s.
    let hops = deferred(&env.metrics().await, "slack");
    assert!(
        (1.0..=4.0).contains(&hops),
        "{hops} hand-offs for a 3 s wait"
    );
    env.stop().await;
}

/// `aic_execution_retries_deferred_total` of `app` in the worker's metrics text.
fn deferred(metrics: &str, app: &str) -> f64 {
    deferred_yet(metrics, app).unwrap_or_else(|| panic!("no deferral of {app} in\n{metrics}"))
}

/// The same, `None` before the first.
fn deferred_yet(metrics: &str, app: &str) -> Option<f64> {
    let series = format!("aic_execution_retries_deferred_total{{app=\"{app}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
}

/// Once a retry is handed to a delay queue, the original request — redelivered, say, after a
/// crash between the hand-off and the ack — is recognised as superseded and dropped: no second
/// vendor call, the parked copy stays the one that runs.
#[tokio::test]
async fn an_original_redelivered_after_a_hand_off_is_dropped() {
    let (env, send) = rate_limited_once(Options::default().prefetch, 30).await;
    let id = env
        .enqueue(&send, json!({"channel": "#general", "text": "later"}))
        .await;
    let started = Instant::now();
    loop {
        let (_, e) = env
            .call(reqwest::Method::GET, &format!("/v1/executions/{id}"), None)
            .await;
        // The hand-off is recorded once the attempts of the first call are stored.
        if e["attempts"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never handed off: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let original = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(),
        "automation_id": send, "parameters": {"channel": "#general", "text": "later"}});
    env.publish_raw(
        original.to_string().as_bytes(),
        aic_core::amqp::json_properties(aic_proto::topology::EXECUTION_REQUEST_TYPE),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, e) = env
        .call(reqwest::Method::GET, &format!("/v1/executions/{id}"), None)
        .await;
    let calls = env.sandbox.requests_to("chat.postMessage").len();
    println!(
        "after the hand-off and a redelivered original: {calls} vendor call(s), status {}",
        e["status"]
    );
    assert_eq!(calls, 1, "the superseded original must not call the vendor");
    assert_eq!(e["status"], "running", "{e}");
    env.stop().await;
}

/// Executions parked behind a long cool-down look at it again every `cooldown_recheck_ms`:
/// while it holds they stay parked and call nothing, and once an admin ends it they run within
/// about that long — not when the cool-down would have ended, 90 s later (within the test's 2 min retry budget).
#[tokio::test]
async fn parked_executions_run_soon_after_an_admin_ends_the_cool_down() {
    let env = TestEnv::start_with(Options {
        retry_inline_max_ms: 500,
        cooldown_recheck_ms: 1_000,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let db = env.pool.get().await.expect("db");
    let automation = uuid::Uuid::parse_str(&lead).expect("uuid");
    let conn: uuid::Uuid = db
        .query_one(
            "UPDATE connections SET throttled_until = now() + interval '90 seconds', \
             throttle_reason = 'the vendor''s rate limit' \
             WHERE id = (SELECT connection_id FROM automations WHERE id = $1) RETURNING id",
            &[&automation],
        )
        .await
        .expect("a cool-down")
        .get(0);
    let ids: Vec<String> = futures_util::future::join_all(
        ["Curie", "Meitner", "Noether"]
            .map(|name| env.enqueue(&lead, json!({"LastName": name, "Company": "Held Ltd"}))),
    )
    .await;
    // Each parked, back after a second, the cool-down looked at and found holding, parked again.
    let started = Instant::now();
    loop {
        let looked: i64 = db
            .query_one(
                "SELECT count(*) FROM executions WHERE automation_id = $1 AND retry_seq >= 2",
                &[&automation],
            )
            .await
            .expect("ledger")
            .get(0);
        if looked == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{looked} of 3 looked at the cool-down twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let creates = env.sandbox.requests_to("/sobjects/Lead/");
    assert!(creates.is_empty(), "called while held: {creates:?}");

    let clear = format!("/v1/connections/{conn}/cooldowns");
    let (status, view) = env.call(reqwest::Method::DELETE, &clear, None).await;
    assert_eq!(status, 200, "{view}");
    let ended = Instant::now();
    for id in &ids {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["result"]["attempts"], 1, "{done}");
    }
    let ran_after = ended.elapsed();
    println!("3 executions parked behind a 90 s cool-down ran {ran_after:?} after it was ended");
    assert!(
        ran_after < Duration::from_secs(8),
        "parked executions ran {ran_after:?} after the cool-down was ended"
    );
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 3);
    env.stop().await;
}

/// A create whose answer was lost, found by its dedupe handle not to have landed, is sent again;
/// when the vendor answers that resend with a long `Retry-After`, the execution is retried
/// like any other call (through a delay queue, after the wait) instead of failing with an
/// answer that asked to be retried.
#[tokio::test]
async fn a_resend_after_a_lost_answer_is_retried_later_when_the_vendor_says_so() {
    let (env, incident) = incident_waiting_briefly().await;
    // The create is lost before it applied; the lookup by correlation id goes through and
    // finds nothing; the resend is refused for 2 s; the retry after it creates the incident.
    env.sandbox.state.faults.push([
        Fault::ResetAfterRequest,
        Fault::Pass,
        Fault::RateLimited { retry_after: 2 },
    ]);
    let started = Instant::now();
    let done = env
        .run(
            &incident,
            json!({"short_description": "resent, then later"}),
        )
        .await;
    let took = started.elapsed();
    let creates = env.sandbox.incident_creates();
    println!("lost, looked up, resent into a 429 (Retry-After 2 s): {done} after {took:?}");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["attempts"], 3, "{done}");
    assert!(
        took >= Duration::from_millis(1_950),
        "ran before Retry-After: {took:?}"
    );
    assert_eq!(creates, 3, "the lost create, the refused resend, its retry");
    assert_eq!(env.sandbox.state.servicenow.records().len(), 1);
    assert!(
        deferred(&env.metrics().await, "servicenow") >= 1.0,
        "the retry left through a delay queue"
    );
    env.stop().await;
}

/// A create whose answer was lost, and whose lookup by correlation id the vendor asks to wait
/// for longer than the worker sleeps in process, is looked up again later through a delay
/// queue — its vendor-call mark kept, so the copy asks before it sends: a create that had
/// landed is answered from the vendor's record, one that had not is sent again. Neither ends
/// `unknown_outcome`, and none is made twice. The landed one's copy is refused too, and hands
/// its own lookup on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_the_vendor_asks_to_wait_for_is_made_later_not_given_up() {
    let (env, incident) = incident_waiting_briefly().await;
    let cases = [
        (Fault::ResetAfterApply, true, 2u32),
        (Fault::ResetAfterRequest, false, 1),
    ];
    for (lost, landed, refusals) in cases {
        let before = env.sandbox.incident_creates();
        let refused = std::iter::repeat_n(Fault::RateLimited { retry_after: 2 }, refusals as usize);
        env.sandbox
            .state
            .faults
            .push(std::iter::once(lost).chain(refused));
        let started = Instant::now();
        let done = env
            .run(
                &incident,
                json!({"short_description": format!("landed: {landed}")}),
            )
            .await;
        let took = started.elapsed();
        let creates = env.sandbox.incident_creates() - before;
        println!(
            "lost ({lost:?}), its lookup refused {refusals} times for 2 s: {done} after {took:?}, {creates} creates"
        );
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            done["result"]["deduplicated"].as_bool().unwrap_or(false),
            landed,
            "{done}"
        );
        assert!(
            took >= Duration::from_millis(1_950) * refusals,
            "looked up again before Retry-After: {took:?}"
        );
        assert_eq!(creates, if landed { 1 } else { 2 }, "{done}");
    }
    assert_eq!(
        env.sandbox.state.servicenow.records().len(),
        2,
        "one incident each"
    );
    assert!(
        deferred(&env.metrics().await, "servicenow") >= 3.0,
        "each lookup left through a delay queue"
    );
    // The lookups' refusals held the connection, as a refused create's would.
    let automation = uuid::Uuid::parse_str(&incident).expect("uuid");
    let reason: Option<String> = env
        .pool
        .get()
        .await
        .expect("db")
        .query_one(
            "SELECT throttle_reason FROM connections \
             WHERE id = (SELECT connection_id FROM automations WHERE id = $1)",
            &[&automation],
        )
        .await
        .expect("the connection")
        .get(0);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("HTTP 429, Retry-After 2 s")),
        "{reason:?}"
    );
    env.stop().await;
}

/// A create whose answer was lost is still looked up when its automation is paused, or its
/// connection needs re-authorising, while its lookup waits in a delay queue: the pause or the
/// connection's state keeps it from being sent again, not from being found. One that had
/// landed is answered from the vendor's record; one that had not fails as paused; one that
/// cannot be looked up is in doubt — never `failed` while the incident may exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_in_doubt_is_looked_up_whatever_happened_to_its_automation_meanwhile() {
    let (env, incident) = incident_waiting_briefly().await;
    let path = format!("/v1/automations/{incident}");
    let db = env.pool.get().await.expect("db");
    let automation = uuid::Uuid::parse_str(&incident).expect("uuid");
    let set_status = |status: &'static str| {
        let (env, path) = (&env, &path);
        async move {
            let (code, body) = env
                .call(Method::PATCH, path, Some(json!({"status": status})))
                .await;
            assert_eq!(code, 200, "{body}");
        }
    };
    let cases = [
        ("landed, then paused", Fault::ResetAfterApply, "paused"),
        (
            "not landed, then paused",
            Fault::ResetAfterRequest,
            "paused",
        ),
        (
            "landed, then its connection refused",
            Fault::ResetAfterApply,
            "reauthorise",
        ),
    ];
    let mut expected = Vec::new();
    for (n, (what, lost, meanwhile)) in cases.into_iter().enumerate() {
        set_status("running").await;
        let before = env.sandbox.incident_creates();
        env.sandbox
            .state
            .faults
            .push([lost, Fault::RateLimited { retry_after: 2 }]);
        let id = env
            .enqueue(&incident, json!({"short_description": what}))
            .await;
        // Once its lookup waits in a delay queue:
        let deadline = Instant::now() + Duration::from_secs(10);
        while deferred_yet(&env.metrics().await, "servicenow").unwrap_or(0.0) < (n + 1) as f64 {
            assert!(Instant::now() < deadline, "{what}: never deferred");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match meanwhile {
            "paused" => set_status("paused").await,
            _ => {
                db.execute(
                    "UPDATE connections SET status = 'needs_reauthorization' \
                     WHERE id = (SELECT connection_id FROM automations WHERE id = $1)",
                    &[&automation],
                )
                .await
                .expect("connection refused");
            }
        }
        let done = env.wait_final(&id).await;
        let creates = env.sandbox.incident_creates() - before;
        println!("{what}: {done}, {creates} creates");
        let error = &done["result"]["error"];
        expected.push((
            what,
            done["status"].clone(),
            done["result"]["deduplicated"].as_bool().unwrap_or(false),
            error["code"].clone(),
            creates,
        ));
    }
    assert_eq!(
        expected,
        [
            (
                "landed, then paused",
                json!("succeeded"),
                true,
                Value::Null,
                1
            ),
            (
                "not landed, then paused",
                json!("failed"),
                false,
                json!("automation_paused"),
                1
            ),
            (
                "landed, then its connection refused",
                json!("unknown_outcome"),
                false,
                json!("unknown_outcome"),
                1
            ),
        ]
    );
    env.stop().await;
}
