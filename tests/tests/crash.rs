//! A worker process killed with SIGKILL in the middle of a run: a second worker carries on,
//! nothing is lost, and no lead is created twice — an execution whose vendor call was in
//! flight at the kill finishes as `unknown_outcome` instead of being re-sent.

use aic_tests::harness::{Options, TestEnv};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TOTAL: usize = 2000;

#[tokio::test]
async fn kill_9_of_a_worker_mid_run_loses_nothing_and_doubles_nothing() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(5));
    let mut victim = env.spawn_worker_process(32);
    // Enqueue while the victim works, and kill it a quarter of the way in.
    let enqueue = async {
        let mut ids = Vec::with_capacity(TOTAL);
        for i in 0..TOTAL {
            ids.push(
                env.enqueue(&lead, json!({"LastName": format!("K{i}"), "Company": "C"}))
                    .await,
            );
        }
        ids
    };
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while env.sandbox.requests_to("/sobjects/Lead/").len() < TOTAL / 4 {
            assert!(
                Instant::now() < deadline,
                "the first worker did not get going"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        victim.kill().expect("SIGKILL");
        let _ = victim.wait();
        let at_kill = env.sandbox.requests_to("/sobjects/Lead/").len();
        (at_kill, env.start_worker(|a| a.prefetch = 32).await)
    };
    let (ids, (at_kill, _survivor)) = tokio::join!(enqueue, kill);

    let mut statuses: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let done = env.wait_final(id).await;
        *statuses
            .entry(done["status"].as_str().unwrap_or("?").into())
            .or_default() += 1;
    }
    let mut per_name: HashMap<String, usize> = HashMap::new();
    for (_, fields) in env.sandbox.state.salesforce.records("Lead") {
        *per_name
            .entry(fields["LastName"].as_str().unwrap_or("").into())
            .or_default() += 1;
    }
    let duplicates = per_name.values().filter(|n| **n > 1).count();
    let succeeded = statuses.get("succeeded").copied().unwrap_or(0);
    let unknown = statuses.get("unknown_outcome").copied().unwrap_or(0);
    let lost = TOTAL - statuses.values().sum::<usize>();
    println!(
        "kill -9 after {at_kill} vendor calls: enqueued {TOTAL}, succeeded {succeeded}, unknown_outcome {unknown}, failed {}, lost {lost}, duplicates at the vendor {duplicates}",
        statuses.get("failed").copied().unwrap_or(0)
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicates, 0, "no lead created twice");
    assert_eq!(succeeded + unknown, TOTAL, "{statuses:?}");
    assert!(
        unknown <= 32,
        "only executions in flight at the kill can be in doubt (prefetch 32): {unknown}"
    );
    env.stop().await;
}
