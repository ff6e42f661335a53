//! A worker process killed with SIGKILL in the middle of a run: a second worker carries on,
//! nothing is lost, and no lead is created twice — an execution whose vendor call was in
//! flight at the kill finishes as `unknown_outcome` instead of being re-sent.

use aic_tests::harness::{Options, TestEnv, sigterm};
use lapin::options::BasicGetOptions;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TOTAL: usize = 2000;

#[tokio::test]
async fn kill_9_of_a_worker_mid_run_loses_nothing_and_doubles_nothing() {
    kill_9_mid_run(false).await;
}

/// The same with creates that upsert on an external id: what was in flight at the kill is sent
/// again safely, so nothing ends in doubt.
#[tokio::test]
async fn kill_9_with_upserts_leaves_nothing_in_doubt() {
    kill_9_mid_run(true).await;
}

async fn kill_9_mid_run(upsert: bool) {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let lead = if upsert {
        env.upserting_lead_automation().await
    } else {
        env.lead_automation().await
    };
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
    let (ids, (at_kill, survivor)) = tokio::join!(enqueue, kill);

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
        "kill -9 (upsert: {upsert}) after {at_kill} vendor calls: enqueued {TOTAL}, succeeded {succeeded}, unknown_outcome {unknown}, failed {}, lost {lost}, duplicates at the vendor {duplicates}",
        statuses.get("failed").copied().unwrap_or(0)
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicates, 0, "no lead created twice");
    assert_eq!(succeeded + unknown, TOTAL, "{statuses:?}");
    assert!(
        unknown <= 32,
        "only executions in flight at the kill can be in doubt (prefetch 32): {unknown}"
    );
    if upsert {
        assert_eq!(
            unknown, 0,
            "an upsert is re-sent safely, never left in doubt"
        );
    }
    // What the victim held came back to the survivor flagged as redelivered, and was counted:
    // every execution left in doubt is one of them.
    let redelivered: usize = survivor
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("aic_deliveries_redelivered_total "))
        .expect("the redeliveries are exported")
        .parse()
        .expect("a count");
    println!("the survivor took {redelivered} redelivered requests");
    assert!(
        redelivered >= unknown,
        "{redelivered} redeliveries counted, {unknown} executions in doubt"
    );
    env.stop().await;
}

/// SIGTERM to a worker process under load: it stops taking work, finishes what it holds, exits
/// 0 within its grace period, and a second worker takes the rest — nothing lost, nothing in
/// doubt, nothing doubled.
#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_work_and_exits_cleanly() {
    const N: usize = 400;
    const PREFETCH: u16 = 32;
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    // Slow enough that the worker always holds a full prefetch of calls in flight.
    env.sandbox.set_latency(Duration::from_millis(300));
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        ids.push(
            env.enqueue(&lead, json!({"LastName": format!("T{i}"), "Company": "C"}))
                .await,
        );
    }
    let mut worker = env.spawn_worker_process(PREFETCH);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sandbox.requests_to("/sobjects/Lead/").len() < N / 4 {
        assert!(Instant::now() < deadline, "the worker did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signalled = Instant::now();
    let at_signal = env.sandbox.requests_to("/sobjects/Lead/").len();
    assert!(sigterm(&worker));
    let status = loop {
        if let Some(s) = worker.try_wait().expect("wait") {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(35),
            "the worker did not exit within its 30 s grace period"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let exit_after = signalled.elapsed();
    let sent_by_first = env.sandbox.requests_to("/sobjects/Lead/").len();
    // What the first worker sent, it finished: the second one finds those in the ledger.
    let _second = env.start_worker(|a| a.prefetch = PREFETCH).await;
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
    let lost = N - statuses.values().sum::<usize>();
    println!(
        "SIGTERM after {at_signal} vendor calls: exit {status} after {} ms; first worker sent {sent_by_first}; enqueued {N}, succeeded {succeeded}, other {:?}, lost {lost}, duplicates at the vendor {duplicates}",
        exit_after.as_millis(),
        statuses
    );
    assert!(status.success(), "exit status {status}");
    assert!(
        // What it held (the prefetch), plus what started between counting and the signal.
        sent_by_first - at_signal <= 2 * PREFETCH as usize,
        "after SIGTERM the worker only finishes what it holds ({at_signal} → {sent_by_first})"
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicates, 0);
    assert_eq!(
        succeeded, N,
        "in-flight work finished, none left in doubt: {statuses:?}"
    );
    env.stop().await;
}

/// A request another consumer took and gave back (its channel closed before any ack) comes back
/// flagged as redelivered: the worker that runs it counts it, so operators see consumers dying.
#[tokio::test]
async fn a_request_given_back_is_counted_as_redelivered() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let id = env
        .enqueue(&lead, json!({"LastName": "Given back", "Company": "C"}))
        .await;
    let ch = env.amqp.create_channel().await.expect("channel");
    let taken = ch
        .basic_get(
            env.names.executions_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .expect("basic.get")
        .expect("the request is queued");
    assert!(!taken.delivery.redelivered, "a first delivery");
    ch.close(200, "a consumer going away".into())
        .await
        .expect("closed");
    let worker = env.start_worker(|a| a.prefetch = 8).await;
    let done = env.wait_final(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let metrics = worker.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "aic_deliveries_redelivered_total 1"),
        "one redelivery counted: {}",
        metrics
            .lines()
            .filter(|l| l.contains("redelivered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    worker.shutdown().await;
    env.stop().await;
}
