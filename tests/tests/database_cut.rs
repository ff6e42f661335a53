//! A PostgreSQL that vanishes from the network — no refusal, no reset: its host gone, a
//! failover that moved its address, a cut link — must not hold the calls given its pooled
//! connections for as long as TCP retransmits (about 15 minutes by default): not the API's
//! callers, and not a worker's executions, which must come through a cut mid-run with nothing
//! lost and nothing sent twice.

use aic_tests::harness::{Options, TestEnv, infrastructure_retries};
use aic_tests::partition::PartitionablePostgres;
use reqwest::Method;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_database_cut_off_the_network_fails_calls_in_seconds_and_serves_again_once_back() {
    let pg = PartitionablePostgres::start().await;
    let env = TestEnv::start_with(Options {
        pg_admin_url: Some(pg.admin_url()),
        ..Options::api_only()
    })
    .await;
    // A pooled connection, open and used.
    let (status, listed) = env.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(status, 200, "{listed}");

    let cut = pg.cut();
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        env.call(Method::GET, "/v1/connections", None),
    )
    .await;
    let took = started.elapsed();
    // Behaviour, not speed: without the bound the call is still waiting a minute later.
    let (status, refused) = answer.expect("a call answered within 60 s of the cut");
    assert_eq!(
        (status.as_u16(), refused["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    assert!(
        took >= Duration::from_secs(5),
        "answered after {took:?}: before the database could have been given up on"
    );

    drop(cut);
    let again = (Method::GET, "/v1/connections", None);
    env.call_until(200, Duration::from_secs(30), again).await;
    env.stop().await;
}

#[tokio::test]
async fn a_database_cut_off_mid_run_loses_nothing_and_the_worker_resumes_once_back() {
    let pg = PartitionablePostgres::start().await;
    let env = TestEnv::start_with(Options {
        pg_admin_url: Some(pg.admin_url()),
        prefetch: 8,
        ..Options::default()
    })
    .await;
    let (_, ids) = env.run_under_way(120, Duration::from_millis(50)).await;

    let cut = pg.cut();
    // Past the bound on a statement the server does not acknowledge (15 s): the ledger writes
    // the cut caught have failed, and are being retried, while it lasts. Without the bound they
    // would still be waiting, retried by nothing, until TCP gave up.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let during = infrastructure_retries(&env.metrics().await);
    assert!(
        during.iter().map(|(_, n)| n).sum::<f64>() > 0.0,
        "the writes the cut caught failed and were retried while it lasted: {during:?}"
    );
    drop(cut);

    let tally = env.accounted_for(&ids).await;
    println!(
        "database cut 22 s mid-run: enqueued 120, {tally:?}; retried during the cut, by step: {during:?}"
    );
    env.stop().await;
}
