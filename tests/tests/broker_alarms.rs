//! RabbitMQ's resource alarms (memory, disk) stop it reading from every connection that
//! publishes, until they clear. An enqueue must be answered meanwhile — never hang, holding
//! its caller and a database connection — and nothing it accepted may be lost.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::private::PrivateRabbit;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn while_the_broker_blocks_publishers_an_enqueue_is_answered_and_nothing_is_lost() {
    let logs = aic_tests::logs::Captured::install("info");
    let rabbit = PrivateRabbit::start().await;
    let env = TestEnv::start_with(Options {
        amqp_url: Some(rabbit.url()),
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let body =
        |i: usize| json!({"parameters": {"LastName": format!("Alarm {i}"), "Company": "Blocked"}});
    let (status, first) = env.call(Method::POST, &path, Some(body(0))).await;
    assert_eq!(status, 202, "{first}");
    env.wait_final(first["execution_id"].as_str().expect("id"))
        .await;

    raise_alarm(&rabbit);
    let (mut kept, mut refused) = (Vec::new(), Vec::new());
    for i in 1..=4 {
        let call = env.call_retry_after(Method::POST, &path, Some(body(i)));
        let (status, retry_after, answer) = answered(call).await;
        match status.as_u16() {
            // The publish the broker stopped reading: its confirm never came in time.
            202 => kept.push(id(&answer)),
            503 => {
                assert_eq!(answer["error"]["code"], "broker_blocked", "{answer}");
                assert!(retry_after.is_some(), "Retry-After");
                let message = answer["error"]["message"].as_str().unwrap_or("");
                assert!(message.contains("nothing was enqueued"), "{answer}");
                refused.push(i);
            }
            other => panic!("{other}: {answer}"),
        }
    }
    // Once the control plane knows of the alarm, it writes nothing more: refused at once.
    assert!(refused.len() >= 3, "kept {kept:?}, refused {refused:?}");
    // A version going live is announced on the broker before it commits: refused as well.
    let automation = format!("/v1/automations/{lead}");
    let publish = format!("{automation}/publish");
    let edit = json!({"retry": {"on_throttle": "fail"}});
    let (status, edited) = env.call(Method::PATCH, &automation, Some(edit)).await;
    assert_eq!(status, 200, "{edited}");
    let (status, answer) = answered(env.call(Method::POST, &publish, None)).await;
    assert_eq!(
        (status.as_u16(), answer["error"]["code"].as_str()),
        (503, Some("broker_blocked")),
        "{answer}"
    );
    assert!(
        answer.to_string().contains("nothing was published"),
        "{answer}"
    );
    let (_, versions) = env
        .call(Method::GET, &format!("{automation}/versions"), None)
        .await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    clear_alarm(&rabbit);

    // What was kept runs once the alarm clears; what was refused was never recorded.
    for execution in &kept {
        let done = env.wait_final(execution).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (_, history) = env
        .call(Method::GET, &format!("{path}?limit=50"), None)
        .await;
    let ran = history["executions"].as_array().map_or(0, Vec::len);
    assert_eq!(ran, 1 + kept.len(), "{history}");
    let (status, published) = env.call(Method::POST, &publish, None).await;
    assert_eq!(status, 201, "{published}");
    // Each connection blocked said so, and why; and when it no longer was (this publish went
    // out once it knew).
    let said = logs.text();
    let blocked = said
        .lines()
        .find(|l| l.contains("RabbitMQ blocks this connection's publishing"));
    assert!(blocked.is_some_and(|l| l.contains("memory")), "{said}");
    assert!(
        said.contains("RabbitMQ unblocked this connection's publishing"),
        "{said}"
    );
    let (status, last) = env.call(Method::POST, &path, Some(body(9))).await;
    assert_eq!(status, 202, "{last}");
    let done = env.wait_final(&id(&last)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    env.stop().await;
}

/// An enqueue's execution id.
fn id(answer: &Value) -> String {
    answer["execution_id"].as_str().expect("id").to_string()
}

/// What `call` answered, within 10 s. Behaviour, not speed: without a bound a call waits for
/// the alarm to clear.
async fn answered<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered while the broker blocks publishers")
}

/// An execution whose result the worker publishes while the alarm is raised waits with it —
/// the worker's `aic_broker_blocked` says so — and its result goes out once the alarm clears,
/// its action done once.
#[tokio::test]
async fn an_execution_in_flight_when_the_alarm_rises_finishes_once_it_clears() {
    let rabbit = PrivateRabbit::start().await;
    let env = TestEnv::start_with(Options {
        amqp_url: Some(rabbit.url()),
        ..Options::default()
    })
    .await;
    let (execution, mut results) = call_meeting_the_alarm(&env, &rabbit, 2000).await;
    assert!(
        gauge_reads(&env, "aic_broker_blocked 1").await,
        "the worker's metrics never said it was blocked"
    );
    assert!(
        results.next(Duration::from_millis(500)).await.is_none(),
        "a result went out in the alarm"
    );

    clear_alarm(&rabbit);
    let result = results
        .next_json(Duration::from_secs(15))
        .await
        .expect("the result, once the alarm cleared");
    assert_succeeded_once(&env, &result, &execution);
    let done = env.wait_final(&execution).await;
    assert_eq!(done["attempts"], 1, "{done}");
    // The broker may route the result it had read before it blocked the connection a moment
    // before the worker reads its notice that the alarm cleared.
    assert!(
        gauge_reads(&env, "aic_broker_blocked 0").await,
        "the worker's metrics still say it is blocked"
    );
    env.stop().await;
}

/// A worker stopped (SIGTERM) while the alarm holds its result still stops within its grace,
/// leaving the execution to the next worker, which answers it from the ledger once the alarm
/// clears: its action done once.
#[tokio::test]
async fn a_worker_stopped_in_an_alarm_stops_within_its_grace() {
    let rabbit = PrivateRabbit::start().await;
    let env = without_worker(&rabbit).await;
    let mut worker = env.spawn_worker_process_with(8, &[("AIC_WORKER_SHUTDOWN_GRACE_SECS", "2")]);
    let (execution, mut results) = call_meeting_the_alarm(&env, &rabbit, 1000).await;
    // The call answered and recorded; its result's publish meets the alarm.
    let done = env.wait_final(&execution).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = stopped(&mut worker).await;
    let took = took.expect("the worker stopped within 20 s of SIGTERM");
    assert!(
        took < Duration::from_secs(6),
        "stopped after {took:?} with a grace of 2 s"
    );

    clear_alarm(&rabbit);
    let next = env.spawn_worker_process(8);
    let result = results
        .next_json(Duration::from_secs(30))
        .await
        .expect("the result, from the next worker");
    assert_succeeded_once(&env, &result, &execution);
    aic_tests::harness::stop_worker_process(next).await;
    env.stop().await;
}

/// `dlq-replay` meeting an alarm stops within seconds, saying why, rather than wait for as long
/// as the alarm lasts on a confirm the broker withholds; what it did not replay stays in the
/// dead-letter queue, and is replayed once the alarm clears.
#[tokio::test]
async fn a_dead_letter_replay_meeting_an_alarm_stops_and_says_why() {
    let rabbit = PrivateRabbit::start().await;
    let env = without_worker(&rabbit).await;
    // Dead-lettered by hand (no worker runs).
    let ch = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    for i in 0..3 {
        let body = format!("dead letter {i}");
        aic_core::amqp::publish_confirmed(
            &ch,
            &env.names.dead_letter_exchange,
            "executions",
            body.as_bytes(),
            aic_core::amqp::json_properties("test"),
            true,
        )
        .await
        .expect("dead-lettered");
    }
    let listed = || aic_control_plane::dlq::list(&env.amqp, &env.names, 10);
    assert_eq!(listed().await.expect("listed").len(), 3);

    raise_alarm(&rabbit);
    let url = secrecy::SecretString::from(rabbit.url());
    let conn = aic_core::amqp::connect(&url, "test-replay")
        .await
        .expect("connects");
    let replay = aic_control_plane::dlq::replay(&conn, &env.names, |_| true);
    let replayed = tokio::time::timeout(Duration::from_secs(30), replay).await;
    let err = replayed
        .expect("answered within 30 s")
        .expect_err("stopped");
    let said = format!("{err:#}");
    assert!(
        said.contains("alarm") && said.contains("0 replayed"),
        "{said}"
    );
    clear_alarm(&rabbit);
    drop(conn);

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while listed().await.expect("listed").len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead letters given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replayed = aic_control_plane::dlq::replay(&env.amqp, &env.names, |_| true).await;
    assert_eq!(replayed.expect("replayed once the alarm cleared"), 3);
    env.stop().await;
}

/// How long `worker` took to exit after SIGTERM, if within 20 s; killed, and reaped, if not.
async fn stopped(worker: &mut std::process::Child) -> Option<Duration> {
    let stopping = std::time::Instant::now();
    let signalled = aic_tests::harness::sigterm(worker);
    while signalled && stopping.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = worker.try_wait() {
            return Some(stopping.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = worker.kill();
    let _ = worker.wait();
    None
}

/// An environment on `rabbit`, no worker started.
async fn without_worker(rabbit: &PrivateRabbit) -> TestEnv {
    TestEnv::start_with(Options {
        amqp_url: Some(rabbit.url()),
        worker: false,
        ..Options::default()
    })
    .await
}

/// Whether the worker's metrics hold the line `line` within 10 s.
async fn gauge_reads(env: &TestEnv, line: &str) -> bool {
    for _ in 0..100 {
        if env.metrics().await.lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A memory alarm: the node's high watermark set below what it uses.
fn raise_alarm(rabbit: &PrivateRabbit) {
    rabbit.ctl(&["set_vm_memory_high_watermark", "absolute", "1000000"]);
}

/// The alarm cleared: the watermark back to RabbitMQ's default.
fn clear_alarm(rabbit: &PrivateRabbit) {
    rabbit.ctl(&["set_vm_memory_high_watermark", "0.4"]);
}

/// Enqueues a lead on a vendor taking `latency_ms`, and raises the alarm 300 ms into the call,
/// so that its result's publish meets it: the execution's id, and a listener on the results.
async fn call_meeting_the_alarm(
    env: &TestEnv,
    rabbit: &PrivateRabbit,
    latency_ms: u64,
) -> (String, aic_tests::harness::Listener) {
    let lead = env.lead_automation().await;
    let results = env.listen(&env.names.results_exchange, "#").await;
    env.sandbox.set_latency(Duration::from_millis(latency_ms));
    let execution = env
        .enqueue(&lead, json!({"LastName": "Alarmed", "Company": "Blocked"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    raise_alarm(rabbit);
    (execution, results)
}

/// `result` is `execution`'s, succeeded, and the vendor saw its lead created once.
fn assert_succeeded_once(env: &TestEnv, result: &Value, execution: &str) {
    assert_eq!(result["execution_id"], execution, "{result}");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead").len(),
        1,
        "the lead created once"
    );
}
