//! Acks are batched (one `basic.ack` with `multiple` per run of deliveries finished in order),
//! and a slow delivery must not hold the ones behind it unacked: the prefetch window would fill
//! with finished work and the worker would stop receiving until the straggler ends.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_slow_delivery_does_not_stall_the_deliveries_behind_it() {
    let env = TestEnv::start_with(Options {
        prefetch: 4,
        ..Options::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let hang = Duration::from_secs(8);
    env.sandbox.state.faults.push([Fault::Hang(hang)]);
    let slow = env
        .enqueue(&automation, json!({"LastName": "Slow", "Company": "Acme"}))
        .await;
    // The first delivery (the lowest tag on the channel) is now stuck at the vendor.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sandbox.state.faults.max_in_flight() == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow call never reached the vendor"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    // Six times the prefetch: with acks held behind the straggler, the worker could take 3.
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(
            env.enqueue(
                &automation,
                json!({"LastName": format!("L{i}"), "Company": "Acme"}),
            )
            .await,
        );
    }
    for id in &ids {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let took = started.elapsed();
    let (_, straggler) = env
        .call(Method::GET, &format!("/v1/executions/{slow}"), None)
        .await;
    println!(
        "24 executions behind a vendor call hung for {hang:?}, prefetch 4: all done in {took:?}; the slow one is {}",
        straggler["status"]
    );
    assert_eq!(
        straggler["status"], "running",
        "the straggler must still be running for this test to mean anything: {straggler}"
    );
    assert!(took < hang, "stalled behind the straggler: {took:?}");
    // And the straggler itself ends normally (the hung call answered 504, retried).
    let done = env.wait_final(&slow).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    env.stop().await;
}
