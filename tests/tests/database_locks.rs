//! A lock held elsewhere on the database — a migration, a maintenance command, a session left
//! idle in its transaction — must not hold the API's calls, and their pooled connections, for
//! as long as it is held; nor may the API hold a lock, or a pooled connection, while it waits on
//! something slow outside the database (a name's resolution).

use aic_tests::dns::{ControlPlaneProcess, StubDns};
use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_call_waiting_for_a_lock_held_elsewhere_is_answered_and_others_go_on() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let body = json!({"parameters": {"LastName": "Locked", "Company": "Out"}});
    // An operator's session holding the ledger, and left open.
    let mut operator = env.pool.get().await.expect("db");
    let held = operator.transaction().await.expect("transaction");
    held.batch_execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("locked");

    let started = Instant::now();
    let blocked = env.call_retry_after(Method::POST, &path, Some(body.clone()));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let other = Instant::now();
        let (status, listed) = env.call(Method::GET, "/v1/connections", None).await;
        (status, listed, other.elapsed())
    };
    let (answer, (status, listed, other)) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), blocked),
        meanwhile
    );
    assert_eq!(status, 200, "{listed}");
    assert!(
        other < Duration::from_secs(2),
        "a call not touching the ledger waited {other:?}"
    );
    // Behaviour, not speed: without a bound the call waits for as long as the lock is held.
    let (status, retry_after, refused) = answer.expect("answered while the lock is held");
    let took = started.elapsed();
    assert_eq!(
        (status.as_u16(), refused["error"]["code"].as_str()),
        (503, Some("database_busy")),
        "{refused}"
    );
    assert!(retry_after.is_some(), "Retry-After");
    assert!(
        took >= Duration::from_secs(9),
        "answered after {took:?}, before its lock wait"
    );

    held.rollback().await.expect("released");
    let (status, queued) = env.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{queued}");
    let (_, history) = env.call(Method::GET, &path, None).await;
    let runs = history["executions"].as_array().map_or(0, Vec::len);
    assert_eq!(runs, 1, "the refused call recorded nothing: {history}");
    env.stop().await;
}

/// `PATCH /v1/connections/{id}` with `body` on the control plane `cp`, as the admin.
async fn edit(
    env: &TestEnv,
    cp: &ControlPlaneProcess,
    id: &str,
    body: Value,
) -> (StatusCode, Value) {
    let url = format!("{}/v1/connections/{id}", cp.api);
    let req = reqwest::Client::new()
        .patch(url)
        .bearer_auth(&env.admin_token);
    let (status, _, answer) = TestEnv::exchange(req, Some(body)).await;
    (status, answer)
}

#[tokio::test]
async fn a_connection_edit_holds_no_lock_on_it_while_its_domain_resolves() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let dns = StubDns::start().await;
    let cp = env.control_plane_resolving_with(&dns).await;
    let conn = env
        .salesforce_connection("Slow DNS", "s3cret", "s3cret")
        .await;
    let id = conn["id"].as_str().expect("id");
    let public = Ipv4Addr::new(93, 184, 216, 34);
    let slow = "slow.my.salesforce.com";
    dns.answer(slow, Some(public), Duration::from_secs(4));

    // An edit moving the connection to a domain whose resolution takes 4 s (far longer than an
    // edit takes, even on a loaded machine); meanwhile another admin renames it: answered while
    // the first still waits on the resolver.
    let moving = edit(&env, &cp, id, json!({"domain": slow}));
    let renaming = async {
        dns.until_asked(slow, 1).await;
        edit(&env, &cp, id, json!({"name": "Renamed"})).await
    };
    let (moved, renamed) = tokio::join!(moving, renaming);
    assert_eq!(renamed.0, 200, "{}", renamed.1);
    assert_eq!(moved.0, 200, "{}", moved.1);
    assert!(
        renamed.1["revision"].as_i64() < moved.1["revision"].as_i64(),
        "the rename waited for the move's resolution: revision {} then {}",
        renamed.1["revision"],
        moved.1["revision"]
    );
    // Both edits hold: the move kept the rename made while it resolved.
    assert_eq!(moved.1["name"], "Renamed", "{}", moved.1);
    assert_eq!(moved.1["domain"], format!("https://{slow}"), "{}", moved.1);

    // New secrets on the domain as saved, resolved first; meanwhile another edit moves the
    // connection to a domain that, by the time the first takes the lock, resolves to the
    // metadata address: the first is refused on the domain it would save, not the one it
    // resolved.
    let other = "other.my.salesforce.com";
    dns.answer(slow, Some(public), Duration::from_secs(4));
    dns.answer(other, Some(public), Duration::ZERO);
    let secrets = json!({"secrets": {"client_secret": "n3w"}});
    let reauthorising = edit(&env, &cp, id, secrets);
    let moving = async {
        dns.until_asked(slow, dns.asked(slow) + 1).await;
        let moved = edit(&env, &cp, id, json!({"domain": other})).await;
        dns.answer(
            other,
            Some(Ipv4Addr::new(169, 254, 169, 254)),
            Duration::ZERO,
        );
        moved
    };
    let (reauthorised, moved) = tokio::join!(reauthorising, moving);
    assert_eq!(moved.0, 200, "{}", moved.1);
    assert_eq!(
        (
            reauthorised.0.as_u16(),
            reauthorised.1["error"]["field"].as_str()
        ),
        (422, Some("domain")),
        "{}",
        reauthorised.1
    );
    let said = reauthorised.1["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains(other) && said.contains("metadata"), "{said}");
    drop(cp);
    env.stop().await;
}

/// Edits waiting on a slow resolver hold no database connection meanwhile: two of them, on a
/// control plane whose pool has two, leave the API answering its other calls.
#[tokio::test]
async fn edits_waiting_on_a_slow_resolver_leave_the_pool_to_other_calls() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let dns = StubDns::start().await;
    let pool = [("AIC_DATABASE_POOL_SIZE", "2")];
    let cp = env.control_plane_resolving_with_env(&dns, &pool).await;
    let public = Ipv4Addr::new(93, 184, 216, 34);
    let (first, second) = ("first.my.salesforce.com", "second.my.salesforce.com");
    let mut ids = Vec::new();
    for (name, to) in [("First", first), ("Second", second)] {
        let conn = env.salesforce_connection(name, "s3cret", "s3cret").await;
        ids.push(conn["id"].as_str().expect("id").to_string());
        dns.answer(to, Some(public), Duration::from_secs(4));
    }
    let moving = async {
        let moved = tokio::join!(
            edit(&env, &cp, &ids[0], json!({"domain": first})),
            edit(&env, &cp, &ids[1], json!({"domain": second})),
        );
        (moved, Instant::now())
    };
    let listing = async {
        dns.until_asked(first, 1).await;
        dns.until_asked(second, 1).await;
        let url = format!("{}/v1/connections", cp.api);
        let req = reqwest::Client::new()
            .get(url)
            .bearer_auth(&env.admin_token);
        let (status, _, listed) = TestEnv::exchange(req, None).await;
        (status, listed, Instant::now())
    };
    let (((a, b), moved_at), (status, listed, listed_at)) = tokio::join!(moving, listing);
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed_at < moved_at,
        "the listing waited for the edits' resolutions"
    );
    for (status, moved) in [a, b] {
        assert_eq!(status, 200, "{moved}");
    }
    drop(cp);
    env.stop().await;
}
