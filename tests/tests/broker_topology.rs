//! Queues deleted under the running services — by an operator, a policy, a broker that lost
//! its definitions while their connections stayed up: the services declare them again and go
//! on, and no message is dropped for want of its queue.
//!
//! RabbitMQ (3.10) does not cancel the consumers of a quorum queue deleted and declared again
//! at once (by the control plane's enqueue), nor feeds them: the worker finds itself starved.

use aic_core::amqp::json_properties;
use aic_proto::topology::{DEAD_LETTER_REASON_HEADER, EXECUTION_REQUEST_TYPE};
use aic_tests::harness::{Options, TestEnv, dead_letter_header};
use aic_tests::sandbox::faults::Fault;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// Deletes `queue` on the test's own channel.
async fn delete(env: &TestEnv, queue: &str) {
    let ch = env.amqp.create_channel().await.expect("channel");
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("deleted");
}

/// `queue`'s messages and consumers once it is there again with what `wanted` says;
/// panics when it is not within 10 s.
async fn once_back(env: &TestEnv, queue: &str, wanted: impl Fn(u32, u32) -> bool) -> (u32, u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A passive declare of a missing queue closes the channel it is asked on: a new one each.
        let ch = env.amqp.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if let Ok(q) = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            && wanted(q.message_count(), q.consumer_count())
        {
            return (q.message_count(), q.consumer_count());
        }
        assert!(Instant::now() < deadline, "{queue} not back within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An enqueue that finds the executions queue gone has the control plane declare the topology
/// again and publish once more: answered 202, the request waiting in the queue.
#[tokio::test]
async fn an_enqueue_finding_its_queue_deleted_declares_it_again() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    delete(&env, &env.names.executions_queue).await;
    let path = format!("/v1/automations/{lead}/executions");
    let body = json!({"parameters": {"LastName": "After", "Company": "C"}});
    let (status, queued) = env.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{queued}");
    let queue = &env.names.executions_queue;
    assert_eq!(once_back(&env, queue, |_, _| true).await, (1, 0));
    env.stop().await;
}

/// A worker whose queues were deleted under it declares them again: its consumer, cancelled,
/// consumes again; a dead letter and a retry handed to a delay queue, which would have been
/// dropped for want of their queue, arrive.
#[tokio::test]
async fn a_worker_whose_queues_were_deleted_declares_them_again_and_drops_nothing() {
    let env = TestEnv::start_with(Options {
        retry_cap_ms: 60_000,
        retry_inline_max_ms: 500,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    delete(&env, &env.names.executions_queue).await;
    let consuming = once_back(&env, &env.names.executions_queue, |_, c| c > 0).await;
    assert_eq!(consuming, (0, 1));
    let after = env
        .run(&lead, json!({"LastName": "After", "Company": "C"}))
        .await;
    assert_eq!(after["status"], "succeeded", "{after}");

    delete(&env, &env.names.dead_letter_queue).await;
    env.publish_raw(b"{not json", json_properties(EXECUTION_REQUEST_TYPE))
        .await;
    once_back(&env, &env.names.dead_letter_queue, |m, _| m > 0).await;
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "invalid_json"
    );

    for (_, queue) in &env.names.delay_queues {
        delete(&env, queue).await;
    }
    let send = env.slack_automation("Notify", "xoxb-topology").await;
    let limited = Fault::RateLimited { retry_after: 2 };
    env.sandbox.state.faults.push([limited]);
    let later = env
        .run(&send, json!({"channel": "#general", "text": "later"}))
        .await;
    assert_eq!(later["status"], "succeeded", "{later}");
    assert_eq!(later["result"]["attempts"], 2, "{later}");
    let metrics = env.metrics().await;
    let deferred = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aic_execution_retries_deferred_total{app=\"slack\"} "));
    assert!(
        deferred.is_some_and(|n| n != "0"),
        "the retry went through a delay queue:\n{metrics}"
    );
    env.stop().await;
}

/// The executions queue deleted and at once declared again by the control plane, whose enqueue
/// found it gone: RabbitMQ leaves the worker's consumer uncancelled, counted on the new queue,
/// and checks messages out to it — up to its prefetch of 4 — that never reach the worker. The
/// worker finds messages ready at two looks in a row with nothing delivered in between, consumes
/// again on a new channel, and runs every request, those checked out to the lost consumer too.
#[tokio::test]
async fn a_worker_left_behind_by_its_queue_declared_again_consumes_again() {
    let env = TestEnv::start_with(Options {
        prefetch: 4,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    delete(&env, &env.names.executions_queue).await;
    let path = format!("/v1/automations/{lead}/executions");
    let mut ids = Vec::new();
    for i in 0..6 {
        let body = json!({"parameters": {"LastName": format!("Again{i}"), "Company": "C"}});
        let (status, queued) = env.call(Method::POST, &path, Some(body)).await;
        assert_eq!(status, 202, "{queued}");
        ids.push(queued["execution_id"].as_str().expect("id").to_string());
    }
    // The worker looks every 15 s: starved at its second look with messages ready.
    let started = Instant::now();
    let first = ids[0].clone();
    loop {
        let (_, e) = env
            .call(Method::GET, &format!("/v1/executions/{first}"), None)
            .await;
        if e["status"] != "queued" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(45), "still {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("running again after {:?}", started.elapsed());
    let counts = env.final_statuses(&ids).await;
    assert_eq!(counts.get("succeeded"), Some(&6), "{counts:?}");
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 6);
    env.stop().await;
}
