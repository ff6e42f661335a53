//! A PostgreSQL that vanishes from the network — no refusal, no reset: its host gone, a
//! failover that moved its address, a cut link — must not hold the calls given its pooled
//! connections for as long as TCP retransmits (about 15 minutes by default).

use aic_tests::harness::{Options, TestEnv};
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
