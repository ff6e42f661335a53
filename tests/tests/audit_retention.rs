//! The audit trail's retention: events older than it keeps are deleted — by the command, and
//! by a control plane given `AIC_AUDIT_KEEP_DAYS`, again and again — and no other.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;

/// Writes an event of `days_ago` days ago (an insert: nothing rewrites an event).
async fn old_event(env: &TestEnv, days_ago: i32) {
    env.query_one(
        "INSERT INTO audit_events (id, tenant_id, at, action, target_kind, target_id, target_name) \
         VALUES (gen_random_uuid(), $1, now() - make_interval(days => $2), 'token.issued', 'token', \
           gen_random_uuid(), 'old') RETURNING 1",
        &[&env.tenant.0, &days_ago],
    )
    .await;
}

#[tokio::test]
async fn retention_deletes_only_what_is_older_than_it_keeps() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let body = json!({"name": "bot", "role": "service"});
    let (status, _) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(status, 201);
    // An event of last year.
    old_event(&env, 400).await;
    assert_eq!(
        env.audit_events("").await.len(),
        3,
        "the initial admin, the bot, the old one"
    );
    assert!(
        aic_control_plane::retention::prune_audit(&env.pool, 0)
            .await
            .is_err()
    );
    let deleted = aic_control_plane::retention::prune_audit(&env.pool, 365)
        .await
        .expect("prune");
    assert_eq!(deleted, 1);
    let kept = env.audit_events("").await;
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["target_name"], "bot");
    env.stop().await;
}

/// A control plane given a retention (`AIC_AUDIT_KEEP_DAYS`) prunes by itself, again and again.
#[tokio::test]
async fn a_retention_set_on_the_control_plane_prunes_on_its_own() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let body = json!({"name": "bot", "role": "service"});
    let (status, _) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(status, 201);
    let every = std::time::Duration::from_millis(100);
    let retention = aic_control_plane::retention::Retention {
        audit_days: Some(30),
        executions_days: None,
    };
    let retention = tokio::spawn(aic_control_plane::retention::retain(
        env.pool.clone(),
        retention,
        every,
    ));
    for round in 0..2 {
        old_event(&env, 31).await;
        let started = std::time::Instant::now();
        while env.audit_events("").await.len() > 2 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "round {round}: not pruned"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(env.audit_events("").await[0]["target_name"], "bot");
    }
    retention.abort();
    env.stop().await;
}
