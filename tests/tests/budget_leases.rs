//! The lease protocol behind a connection's fleet-wide cap, driven step by step: two workers'
//! budgets on one connection of the test database, with the connection's row held locked by
//! the test to stop a renewal half-way. What the fleet may run at once is read from the
//! permits each side holds and from `connection_leases`.

use aic_proto::ConnectionId;
use aic_tests::harness::{Options, TestEnv};
use aic_worker::budget::{Admission, Budgets, Permit};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test environment without workers (the test plays them), and a Salesforce connection in
/// it capped at `cap`.
async fn capped(cap: i32) -> (TestEnv, ConnectionId) {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let client_id = format!("3MVG9{}", uuid::Uuid::new_v4().simple());
    let (status, body) = env
        .call(
            reqwest::Method::POST,
            "/v1/connections",
            Some(
                json!({"name": "Capped", "app": "salesforce", "domain": env.sandbox.url(),
                "auth_type": "oauth2_client_credentials", "max_concurrency": cap,
                "secrets": {"client_id": client_id, "client_secret": "s3cret-value"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    (env, id.parse().expect("a connection id"))
}

/// The budgets of worker `name` (prefetch 16) on a pool of their own, named so that the test
/// sees their statements in `pg_stat_activity`.
fn budgets(env: &TestEnv, name: &str) -> Arc<Budgets> {
    let mut url = url::Url::parse(env.database_url().expose_secret()).expect("url");
    url.query_pairs_mut().append_pair("application_name", name);
    let pool = aic_core::db::pool(
        &SecretString::from(url.to_string()),
        4,
        aic_core::db::Planning::PerExecution,
    )
    .expect("pool");
    Budgets::start(pool, name.to_string(), 10, 16)
}

async fn admit(b: &Budgets, conn: ConnectionId, wait: Duration) -> Option<Permit> {
    match b.admit(conn, None, None, wait, wait).await {
        Admission::Go(p) => Some(p),
        Admission::Busy => None,
        Admission::Throttled(until, why) => panic!("throttled until {until}: {why}"),
        Admission::Gone => panic!("the connection is gone"),
    }
}

/// Polls `sql` (one int8 column) on the test database until it returns `want`.
async fn until_count(env: &TestEnv, sql: &str, want: i64, within: Duration, what: &str) {
    let started = Instant::now();
    loop {
        let client = env.pool.get().await.expect("client");
        let n: i64 = client.query_one(sql, &[]).await.expect(sql).get(0);
        if n == want {
            return;
        }
        assert!(started.elapsed() < within, "{what}: {n}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lease_slots(worker: &str) -> String {
    format!(
        "SELECT coalesce(max(slots), -1)::int8 FROM connection_leases WHERE worker_id = '{worker}'"
    )
}

/// Calls admitted under a worker's old share while its renewal's transaction runs are in what
/// the renewal records, so the other worker cannot take the slots they use. (A renewal that
/// counted its calls before the transaction recorded one of four here, and the other worker
/// took a fifth slot under a cap of 4.)
#[tokio::test]
async fn calls_admitted_during_a_renewal_are_in_the_lease_it_records() {
    let (env, conn) = capped(4).await;
    let (a, b) = (budgets(&env, "budgets-a"), budgets(&env, "budgets-b"));
    let mut held = vec![
        admit(&a, conn, Duration::ZERO)
            .await
            .expect("A's first call"),
    ];
    // Hold the connection's row: renewals stop at it, inside their transactions. B comes to
    // want a slot first, then A's next periodic renewal starts: once the row is free, B's
    // renewal (first in the row's queue) says B wants a slot, and A's then sees it.
    let mut client = env.pool.get().await.expect("client");
    let lock = client.transaction().await.expect("begin");
    lock.query_one(
        "SELECT 1 FROM connections WHERE id = $1 FOR UPDATE",
        &[&conn.0],
    )
    .await
    .expect("lock");
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { admit(&b, conn, Duration::from_secs(20)).await })
    };
    for (worker, what) in [
        (
            "budgets-b",
            "B's first renewal waiting on the connection's row",
        ),
        (
            "budgets-a",
            "A's periodic renewal waiting on the connection's row",
        ),
    ] {
        until_count(
            &env,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{worker}' \
                 AND wait_event_type = 'Lock'"
            ),
            1,
            Duration::from_secs(5),
            what,
        )
        .await;
    }
    // Meanwhile A's share (4) lets three more calls go.
    for i in 2..=4 {
        let p = admit(&a, conn, Duration::ZERO).await;
        held.push(p.unwrap_or_else(|| panic!("A's call {i} within its share of 4")));
    }
    lock.commit().await.expect("unlock");
    until_count(
        &env,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'budgets-a' \
         AND wait_event_type = 'Lock'",
        0,
        Duration::from_secs(5),
        "A's renewal done",
    )
    .await;
    // A's renewal, and B's on-demand ones after it (every 200 ms), have had their chance.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let client = env.pool.get().await.expect("client");
    let recorded: i64 = client
        .query_one(&lease_slots("budgets-a"), &[])
        .await
        .expect("A's lease")
        .get(0);
    println!("A holds 4 calls; its lease records {recorded}");
    assert!(
        recorded >= 4,
        "A holds 4 calls, its lease records {recorded}"
    );
    assert!(
        !waiter.is_finished(),
        "B got a slot while A held all 4 of the cap: {:?}",
        waiter.await.map(|p| p.is_some())
    );

    // One of A's calls finishes: the slot reaches B.
    held.pop();
    let started = Instant::now();
    let got = waiter.await.expect("B's waiter");
    assert!(got.is_some(), "B never got the slot A freed");
    println!("B got the freed slot after {:?}", started.elapsed());
    drop((got, held));
    env.stop().await;
}

/// An execution abandoned while it waits for a slot (its future dropped) stops counting as
/// waiting: once the connection's calls are done the worker gives the whole lease back,
/// rather than keep it wanted for good.
#[tokio::test]
async fn an_abandoned_wait_does_not_keep_the_lease() {
    let (env, conn) = capped(1).await;
    let a = budgets(&env, "budgets-alone");
    let call = admit(&a, conn, Duration::ZERO).await.expect("the one slot");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        admit(&a, conn, Duration::from_secs(10)),
    )
    .await;
    assert!(abandoned.is_err(), "a second call under a cap of 1");
    drop(call);
    // Idle leases are given back at the first periodic renewal (every 2 s) that finds no call
    // started since the one before.
    until_count(
        &env,
        &lease_slots("budgets-alone"),
        -1,
        Duration::from_secs(8),
        "the idle worker's lease (slots)",
    )
    .await;
    // And a later call leases again.
    let again = admit(&a, conn, Duration::ZERO).await;
    assert!(again.is_some(), "no slot after the lease was given back");
    env.stop().await;
}

/// A connection in use keeps its lease across the periodic renewals even when no call happens
/// to be in flight at one (calls of no time at all, 20 a second): every call finds the lease
/// live and goes at once, without a renewal first. Once the calls stop, the lease is given
/// back. (Given back whenever nothing was in flight, the lease went every 2 s.)
#[tokio::test]
async fn a_connection_in_use_keeps_its_lease_between_calls() {
    let (env, conn) = capped(4).await;
    let b = budgets(&env, "budgets-steady");
    drop(
        admit(&b, conn, Duration::ZERO)
            .await
            .expect("the first call leases"),
    );
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let call = b.try_admit(conn, None);
        assert!(
            call.is_some(),
            "call {calls}, {:?} in, found the lease given back",
            started.elapsed()
        );
        calls += 1;
    }
    until_count(
        &env,
        &lease_slots("budgets-steady"),
        -1,
        Duration::from_secs(8),
        "the lease once the calls stopped (slots)",
    )
    .await;
    env.stop().await;
}

/// A connection deleted while executions use it (with its automations, which reference it)
/// ends their wait for a slot at once, saying so: neither a hot loop of renewals that find no
/// row nor a wait for slots that will never come.
#[tokio::test]
async fn a_deleted_connection_ends_the_wait_for_a_slot() {
    let (env, conn) = capped(1).await;
    let a = budgets(&env, "budgets-deleted-a");
    let b = budgets(&env, "budgets-deleted-b");
    let call = admit(&a, conn, Duration::ZERO).await.expect("the one slot");
    let client = env.pool.get().await.expect("client");
    let deleted = client
        .execute("DELETE FROM connections WHERE id = $1", &[&conn.0])
        .await
        .expect("delete the connection");
    assert_eq!(deleted, 1);
    for (who, budgets) in [("a worker new to it", &b), ("the worker using it", &a)] {
        let started = Instant::now();
        let admission = tokio::time::timeout(
            Duration::from_secs(5),
            budgets.admit(
                conn,
                None,
                None,
                Duration::from_secs(30),
                Duration::from_secs(30),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{who} still waits for a slot of a deleted connection"));
        assert!(
            matches!(admission, Admission::Gone),
            "{who}: {admission:?}, not Gone"
        );
        println!("{who} saw it gone after {:?}", started.elapsed());
    }
    drop(call);
    env.stop().await;
}

/// A worker that crashed or was killed leaves its leases behind, and every renewal on the
/// connection reads them: each running process sweeps those expired for an hour at its beat,
/// and no lease that may still be in use.
#[tokio::test]
async fn leases_a_gone_worker_left_are_swept() {
    let (env, conn) = capped(4).await;
    let client = env.pool.get().await.expect("client");
    for (worker, expired) in [
        ("crashed-long-ago", "2 hours"),
        ("stopped-just-now", "1 minute"),
    ] {
        client
            .execute(
                &format!(
                    "INSERT INTO connection_leases (connection_id, worker_id, slots, wanted, expires_at) \
                     VALUES ($1, $2, 2, 2, now() - interval '{expired}')"
                ),
                &[&conn.0, &worker],
            )
            .await
            .expect("a lease");
    }
    let keyring = env.settings().1.keyring().expect("keyring");
    let beat = aic_core::fleet::report(env.pool.clone(), "worker", "test".into(), &keyring);
    let gone = "SELECT count(*) FROM connection_leases WHERE worker_id = 'crashed-long-ago'";
    until_count(&env, gone, 0, Duration::from_secs(5), "the old lease").await;
    let kept = "SELECT count(*) FROM connection_leases WHERE worker_id = 'stopped-just-now'";
    until_count(&env, kept, 1, Duration::from_secs(1), "the recent lease").await;
    beat.stop().await;
    env.stop().await;
}
