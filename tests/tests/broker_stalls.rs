//! A RabbitMQ that stops answering without closing anything — a stalled host, a load balancer
//! with no node behind it: its connections accept bytes and say nothing, and a new one never
//! gets past its handshake. The API must answer meanwhile, not wait for the broker; a
//! worker must know it is cut off, and once the broker is back finish every execution it
//! held, none sent twice — and a handshake never answered is given up, not waited on for ever.

use aic_tests::harness::{Options, TestEnv, readiness};
use aic_tests::holding::HoldingProxy;
use aic_tests::private::PrivateRabbit;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn while_the_broker_stalls_the_api_answers_and_enqueues_again_once_it_is_back() {
    let rabbit = PrivateRabbit::start().await;
    // Heartbeats 2 s apart: the stalled connection is known dead within seconds.
    let env = TestEnv::start_with(Options {
        amqp_url: Some(format!("{}?heartbeat=2", rabbit.url())),
        ..Options::api_only()
    })
    .await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let body = json!({"parameters": {"LastName": "Stall", "Company": "Broker"}});
    let (status, queued) = env.call(Method::POST, &path, Some(body.clone())).await;
    assert_eq!(status, 202, "{queued}");

    let frozen = rabbit.frozen();
    // Past the heartbeats' bound: the connection is dead, and the control plane reconnecting.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for _ in 0..2 {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            env.call(Method::POST, &path, Some(body.clone())),
        )
        .await;
        // Behaviour, not speed: without a bound the call waits for the stalled handshake.
        let (status, refused) = answer.expect("an enqueue answered within 30 s of the stall");
        assert_eq!(
            (status.as_u16(), refused["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "{refused}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
    let (status, ready) = readiness(&env.api).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("\"rabbitmq\":false"), "{ready}");

    drop(frozen);
    let again = (Method::POST, path.as_str(), Some(body));
    env.call_until(202, Duration::from_secs(60), again).await;
    env.stop().await;
}

#[tokio::test]
async fn while_the_broker_stalls_the_worker_holds_its_work_and_finishes_it_once_it_is_back() {
    let rabbit = PrivateRabbit::start().await;
    let env = TestEnv::start_with(Options {
        amqp_url: Some(format!("{}?heartbeat=2", rabbit.url())),
        prefetch: 8,
        ..Options::default()
    })
    .await;
    let (_, ids) = env.run_under_way(120, Duration::from_millis(50)).await;

    let frozen = rabbit.frozen();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let admin = env.worker_admin.expect("a worker runs");
    let (status, ready) = readiness(&format!("http://{admin}")).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("\"rabbitmq\":false"), "{ready}");
    let held = env.sandbox.requests_to("/sobjects/Lead/").len();
    drop(frozen);

    let counts = env.final_statuses(&ids).await;
    let creates = env.sandbox.requests_to("/sobjects/Lead/").len();
    println!(
        "broker stalled 8 s mid-run: {held} creates before it was back; enqueued 120, {counts:?}, vendor creates {creates}"
    );
    assert_eq!(counts.get("succeeded"), Some(&120), "{counts:?}");
    assert_eq!(creates, 120, "no lead sent twice");
    env.stop().await;
}

/// A reconnect whose handshake the broker's address accepts and never answers — a proxy
/// holding the connection with no node behind it, a node stalled for good while another took
/// its address — is given up after the handshake's bound (twice the heartbeat) and made again:
/// the worker consumes once a broker answers there again, rather than wait on that handshake
/// for ever.
#[tokio::test]
async fn a_reconnect_never_answered_is_given_up_and_made_again() {
    let mut url = reqwest::Url::parse(&aic_tests::harness::amqp_url()).expect("the broker's URL");
    let host = url.host_str().expect("a host").to_string();
    let target = tokio::net::lookup_host((host, url.port().unwrap_or(5672)))
        .await
        .expect("the broker's address")
        .next()
        .expect("an address");
    let proxy = HoldingProxy::start(target).await;
    url.set_port(Some(proxy.addr.port())).expect("a port");
    url.set_query(Some("heartbeat=2"));
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let worker = env
        .start_worker(|a| a.amqp.amqp_url = url.to_string().into())
        .await;
    let lead = env.lead_automation().await;
    let values = json!({"LastName": "Held", "Company": "Proxy"});
    let done = env.run(&lead, values.clone()).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    proxy.hold_new(true);
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(15);
    while proxy.held() == 0 {
        assert!(Instant::now() < deadline, "the worker did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.hold_new(false);
    let started = Instant::now();
    let done = env.run(&lead, values).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    println!(
        "reconnect held by the broker's address: consuming again {:?} after it answered",
        started.elapsed()
    );
    let (status, ready) = readiness(&format!("http://{}", worker.admin)).await;
    assert_eq!(status, 200, "{ready}");
    worker.shutdown().await;
    env.stop().await;
}
