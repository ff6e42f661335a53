//! The broker or the database restarted in the middle of a run: nothing is lost, nothing is
//! sent to the vendor twice, and the services resume on their own. Each test runs its own
//! private RabbitMQ or PostgreSQL, so stopping it disturbs no other test.

use aic_tests::harness::{Options, TestEnv, infrastructure_retries};
use aic_tests::private::{PrivatePostgres, PrivateRabbit};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_rabbitmq_restart_mid_run_loses_nothing_and_the_services_resume_on_their_own() {
    let mut rabbit = PrivateRabbit::start().await;
    let env = TestEnv::start_with(Options {
        amqp_url: Some(rabbit.url()),
        prefetch: 16,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(20));
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(
            env.enqueue(
                &lead,
                json!({"LastName": format!("Before{i}"), "Company": "C"}),
            )
            .await,
        );
    }
    env.wait_for_vendor_calls("/sobjects/Lead/", 30).await;
    let restart = Instant::now();
    rabbit.restart().await;
    let down_for = restart.elapsed();

    // Enqueue more: the control plane answers 503 until it has reconnected, then 202.
    let mut refused = 0;
    for i in 0..50 {
        let path = format!("/v1/automations/{lead}/executions");
        loop {
            let (status, body) = env
                .call(
                    Method::POST,
                    &path,
                    Some(json!({"parameters": {"LastName": format!("After{i}"), "Company": "C"}})),
                )
                .await;
            if status == 202 {
                ids.push(body["execution_id"].as_str().expect("id").to_string());
                break;
            }
            assert_eq!(status, 503, "{body}");
            refused += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let counts = env.final_statuses(&ids).await;
    let creates = env.sandbox.requests_to("/sobjects/Lead/").len();
    let succeeded = counts.get("succeeded").copied().unwrap_or(0);
    println!(
        "broker down {down_for:?}: enqueued {}, succeeded {succeeded}, other {:?}, vendor creates {creates}, duplicates {}, lost 0, enqueues refused while reconnecting {refused}",
        ids.len(),
        counts
            .iter()
            .filter(|(k, _)| *k != "succeeded")
            .collect::<Vec<_>>(),
        creates.saturating_sub(succeeded)
    );
    assert_eq!(succeeded, 200, "{counts:?}");
    assert_eq!(creates, 200, "no lead sent twice");
    let (status, ready) = env.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    env.stop().await;
}

#[tokio::test]
async fn a_postgres_restart_mid_run_loses_nothing_and_crashes_nothing() {
    let pg = PrivatePostgres::start().await;
    let env = TestEnv::start_with(Options {
        pg_admin_url: Some(pg.admin_url()),
        prefetch: 8,
        ..Options::default()
    })
    .await;
    let (_, ids) = env.run_under_way(200, Duration::from_millis(50)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again().await;
    let tally = env.accounted_for(&ids).await;
    println!("postgres down 3 s: enqueued 200, {tally:?}, lost 0");
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("aic_executions_total"),
        "the worker is still alive and serving metrics"
    );
    // The executions in flight waited the outage out in the worker, and said so.
    let retried = infrastructure_retries(&metrics);
    println!("retried in place, by step: {retried:?}");
    assert!(
        retried.iter().map(|(_, n)| n).sum::<f64>() > 0.0,
        "the outage's retries are counted: {retried:?}"
    );
    env.stop().await;
}
