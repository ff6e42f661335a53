//! Execution semantics under pressure: synchronous waits, the dead-letter
//! queue and its replay, poison among good messages, an execution id reused by another tenant,
//! an older copy of a request handed to a delay queue, and a graceful shutdown during load.

use aic_proto::topology::{DEAD_LETTER_REASON_HEADER, EXECUTION_REQUEST_TYPE};
use aic_tests::harness::{Options, TestEnv};
use lapin::types::{AMQPValue, FieldTable, LongString};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_caller_can_wait_for_the_result_within_a_budget() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let (status, done) = env
        .call(
            Method::POST,
            &path,
            Some(json!({"parameters": {"LastName": "Sync", "Company": "Now"}, "wait_ms": 10000})),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "succeeded");
    assert!(
        done["result"]["output"]["id"]
            .as_str()
            .unwrap_or("")
            .starts_with("00Q"),
        "{done}"
    );

    // Past the budget: the id now, the result later.
    env.sandbox.set_latency(Duration::from_millis(1500));
    let started = Instant::now();
    let (status, later) = env
        .call(
            Method::POST,
            &path,
            Some(json!({"parameters": {"LastName": "Slow", "Company": "Later"}, "wait_ms": 300})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), later["status"].as_str()),
        (202, Some("queued")),
        "{later}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the budget bounds the wait"
    );
    let done = env
        .wait_final(later["execution_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded");
    let (status, err) = env
        .call(
            Method::POST,
            &path,
            Some(json!({"parameters": {}, "wait_ms": 60000})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("wait_ms"))
    );
    env.stop().await;
}

/// Parks a request in the dead-letter queue as the broker does past the delivery limit.
async fn dead_letter(env: &TestEnv, body: &[u8]) {
    let mut headers = FieldTable::default();
    headers.insert(
        DEAD_LETTER_REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from("delivery_limit")),
    );
    let ch = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    aic_core::amqp::publish_confirmed(
        &ch,
        &env.names.dead_letter_exchange,
        "executions",
        body,
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE).with_headers(headers),
        true,
    )
    .await
    .expect("dead-lettered");
}

#[tokio::test]
async fn dead_letters_are_listed_without_loss_and_replayed_once_fixed() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.publish_raw(
        b"not json at all",
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
    )
    .await;
    // A valid request the broker dead-lettered (say, during an outage): replaying it runs it.
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": lead, "parameters": {"LastName": "Replayed", "Company": "DLQ"}});
    dead_letter(&env, body.to_string().as_bytes()).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let l = aic_control_plane::dlq::list(&env.amqp, &env.names, 10)
            .await
            .expect("list");
        if l.len() == 2 || Instant::now() > deadline {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut reasons: Vec<_> = listed.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["delivery_limit", "invalid_json"]);
    assert_eq!(
        aic_control_plane::dlq::list(&env.amqp, &env.names, 10)
            .await
            .expect("list")
            .len(),
        2,
        "listing removes nothing"
    );

    let replayed =
        aic_control_plane::dlq::replay(&env.amqp, &env.names, |d| d.reason == "delivery_limit")
            .await
            .expect("replay");
    assert_eq!(replayed, 1);
    let done = env.wait_final(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let left = aic_control_plane::dlq::list(&env.amqp, &env.names, 10)
        .await
        .expect("list");
    assert_eq!(
        left.iter().map(|d| d.reason.as_str()).collect::<Vec<_>>(),
        ["invalid_json"]
    );
    env.stop().await;
}

/// A request the broker dead-lettered while its ledger row was left running with the vendor
/// call in doubt (a worker crashing on it until the delivery limit), replayed by an operator:
/// the replayed copy settles the row at once — in doubt, not sent again — instead of waiting
/// for another copy of the request to finish it, as a client's second publish would.
#[tokio::test]
async fn a_replayed_request_settles_a_row_left_in_doubt_at_once() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": lead, "parameters": {"LastName": "Stuck", "Company": "DLQ"}}).to_string();
    env.publish_raw(
        body.as_bytes(),
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
    )
    .await;
    assert_eq!(env.wait_final(&id).await["status"], "succeeded");
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE executions SET status = 'running', result = NULL, finished_at = NULL \
             WHERE id = $1::text::uuid AND vendor_call_started_at IS NOT NULL",
            &[&id],
        )
        .await
        .expect("left running, in doubt");
    dead_letter(&env, body.as_bytes()).await;
    let replayed = aic_control_plane::dlq::replay(&env.amqp, &env.names, |_| true)
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    // Waiting for another copy, it would step back for 15 minutes: `wait_final` gives it 30 s.
    let done = env.wait_final(&id).await;
    assert_eq!(done["status"], "unknown_outcome", "{done}");
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "not sent again"
    );
    env.stop().await;
}

/// Nothing crosses tenants: a request naming another tenant's execution id is not run, not
/// answered from that tenant's row and does not touch it; it is dead-lettered, named.
#[tokio::test]
async fn an_execution_id_another_tenant_used_is_dead_lettered_and_its_row_left_alone() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let id = uuid::Uuid::now_v7().to_string();
    let request = |tenant: String, last_name: &str| {
        json!({"version": 1, "execution_id": id, "tenant_id": tenant, "automation_id": lead,
            "parameters": {"LastName": last_name, "Company": "Tenants"}})
        .to_string()
    };
    env.publish_raw(
        request(env.tenant.to_string(), "Owner").as_bytes(),
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
    )
    .await;
    let first = env.wait_final(&id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let other = aic_control_plane::tenants::create_tenant(&env.pool, "globex")
        .await
        .expect("a second tenant");
    env.publish_raw(
        request(other.tenant_id.to_string(), "Intruder").as_bytes(),
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let d = aic_control_plane::dlq::list(&env.amqp, &env.names, 10)
            .await
            .expect("list");
        if !d.is_empty() || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, "execution_id_conflict");
    assert_eq!(dead[0].execution_id.as_deref(), Some(id.as_str()));
    assert!(
        dead[0].detail.contains("another tenant"),
        "{}",
        dead[0].detail
    );
    let row = env
        .query_one(
            "SELECT tenant_id::text, deliveries, parameters->>'LastName' FROM executions WHERE id = $1::text::uuid",
            &[&id],
        )
        .await;
    let (tenant, deliveries, last_name): (String, i32, String) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (tenant, deliveries, last_name.as_str()),
        (env.tenant.to_string(), 1, "Owner")
    );
    assert_eq!(
        env.wait_final(&id).await,
        first,
        "the owner's result unchanged"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "the other tenant's request reached no vendor"
    );
    env.stop().await;
}

/// The original of a request since handed to a delay queue (its row's retry sequence moved on)
/// arriving again — redelivered after its worker died — is dropped: the newer copy owns the
/// execution. It is counted as a delivery, and nothing else: no call, no result, no dead letter.
#[tokio::test]
async fn an_older_copy_of_a_request_handed_to_a_delay_queue_is_dropped() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": lead, "parameters": {"LastName": "Older", "Company": "Copies"}}).to_string();
    let publish = || {
        env.publish_raw(
            body.as_bytes(),
            aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
        )
    };
    publish().await;
    assert_eq!(env.wait_final(&id).await["status"], "succeeded");
    let db = env.pool.get().await.expect("db");
    // As a hand-off to a delay queue leaves it: running, its copy number 1.
    db.execute(
        "UPDATE executions SET status = 'running', result = NULL, finished_at = NULL, retry_seq = 1 \
         WHERE id = $1::text::uuid",
        &[&id],
    )
    .await
    .expect("handed off");
    publish().await;
    let row = || async {
        let r = db
            .query_one(
                "SELECT deliveries, status, result IS NULL FROM executions WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .expect("the row");
        (
            r.get::<_, i32>(0),
            r.get::<_, String>(1),
            r.get::<_, bool>(2),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while row().await.0 < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Long enough for a requeue, a retry or a call to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        row().await,
        (2, "running".to_string(), true),
        "begun once more, left alone"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "not sent again"
    );
    let dead = aic_control_plane::dlq::list(&env.amqp, &env.names, 10)
        .await
        .expect("list");
    assert!(dead.is_empty(), "{dead:?}");
    env.stop().await;
}

#[tokio::test]
async fn poison_messages_among_good_ones_are_dead_lettered_and_the_good_ones_unaffected() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let mut ids = Vec::new();
    for i in 0..30 {
        if i % 6 == 5 {
            let poison: &[u8] = if i % 12 == 5 {
                b"\xff\xfe garbage"
            } else {
                br#"{"version": 99}"#
            };
            env.publish_raw(
                poison,
                aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
            )
            .await;
        } else {
            let id = uuid::Uuid::now_v7().to_string();
            let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": lead, "parameters": {"LastName": format!("L{i}"), "Company": "C"}});
            env.publish_raw(
                body.to_string().as_bytes(),
                aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
            )
            .await;
            ids.push(id);
        }
    }
    for id in &ids {
        assert_eq!(env.wait_final(id).await["status"], "succeeded");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let d = aic_control_plane::dlq::list(&env.amqp, &env.names, 50)
            .await
            .expect("list");
        if d.len() >= 5 || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "enqueued 30: succeeded {}, dead-lettered {}, lost {}",
        ids.len(),
        dead.len(),
        30 - ids.len() - dead.len()
    );
    assert_eq!((ids.len(), dead.len()), (25, 5));
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 25);
    env.stop().await;
}

#[tokio::test]
async fn a_shutdown_during_load_finishes_in_flight_work_and_leaves_the_rest_for_redelivery() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(300));
    let first = env.start_worker(|a| a.prefetch = 8).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            env.enqueue(&lead, json!({"LastName": format!("S{i}"), "Company": "C"}))
                .await,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sandbox.requests_to("/sobjects/Lead/").len() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = first.shutdown().await;
    let sent_by_first = env.sandbox.requests_to("/sobjects/Lead/").len();
    let client = env.pool.get().await.expect("db");
    let finished: i64 = client
        .query_one(
            "SELECT count(*) FROM executions WHERE status = 'succeeded'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    let in_doubt: i64 = client
        .query_one(
            "SELECT count(*) FROM executions WHERE status = 'running'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    println!(
        "shutdown took {took:?}; the first worker sent {sent_by_first}, finished {finished}, left {in_doubt} running"
    );
    assert!(
        took < Duration::from_secs(10),
        "exit within the grace period"
    );
    assert_eq!(
        finished as usize, sent_by_first,
        "every request it sent was finished and recorded"
    );
    assert_eq!(in_doubt, 0, "nothing left half-done");
    assert!(finished < 40, "the rest was left to the queue");

    let _second = env.start_worker(|_| {}).await;
    for id in &ids {
        assert_eq!(env.wait_final(id).await["status"], "succeeded");
    }
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        40,
        "no lead created twice, none lost"
    );
    env.stop().await;
}
