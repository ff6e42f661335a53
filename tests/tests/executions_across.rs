//! The tenant's executions across its automations (`GET /v1/executions`): every automation's,
//! deleted ones' included, merged newest first, paged without skipping or repeating one while
//! others arrive, filtered by status and time; another tenant's never; readers only.

use aic_control_plane::auth::Role;
use aic_tests::harness::TestEnv;
use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// The ids of a page, and its `next`.
fn page(body: &Value) -> (Vec<Uuid>, Option<String>) {
    let ids = body["executions"]
        .as_array()
        .unwrap_or_else(|| panic!("executions: {body}"))
        .iter()
        .map(|e| e["id"].as_str().expect("id").parse().expect("uuid"))
        .collect();
    (ids, body["next"].as_str().map(str::to_string))
}

/// One ledger row as a worker would have left it: enqueued `at`, of `status`.
struct Row {
    id: Uuid,
    tenant: Uuid,
    automation: Uuid,
    status: &'static str,
    at: DateTime<Utc>,
}

async fn insert(env: &TestEnv, rows: &[Row]) {
    let client = env.pool.get().await.expect("db");
    for r in rows {
        client
            .execute(
                "INSERT INTO executions (id, tenant_id, automation_id, status, enqueued_at, \
                   finished_at) \
                 VALUES ($1, $2, $3, $4::text, $5, \
                   CASE WHEN $4::text IN ('succeeded', 'failed', 'unknown_outcome') THEN $5::timestamptz END)",
                &[&r.id, &r.tenant, &r.automation, &r.status, &r.at],
            )
            .await
            .expect("a ledger row");
    }
}

/// Walks `GET /v1/executions?{filters}` two at a time; the ids in page order.
async fn walk(env: &TestEnv, filters: &str, between: impl AsyncFn()) -> Vec<Uuid> {
    let mut walked = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let after = next.map(|n| format!("&after={n}")).unwrap_or_default();
        let path = format!("/v1/executions?limit=2{filters}{after}");
        let (status, body) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let (ids, more) = page(&body);
        assert!(ids.len() <= 2, "{body}");
        walked.extend(ids);
        assert!(walked.len() <= 50, "the pages never end: {walked:?}");
        between().await;
        next = more;
        if next.is_none() {
            return walked;
        }
    }
}

#[tokio::test]
async fn every_automations_executions_merge_newest_first_and_page_through() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let good = env
        .enqueue(&lead, json!({"LastName": "Ada", "Company": "Engines"}))
        .await;
    env.wait_final(&good).await;
    let refused = env
        .enqueue(&lead, json!({"LastName": "Bob", "Company": ""}))
        .await;
    env.wait_final(&refused).await;

    // Older rows of three more automations (one since deleted: the ledger has no foreign key),
    // interleaved in time, two enqueued in the same instant; and another tenant's, newest of all.
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let hour = |h: i64| Utc::now() - Duration::hours(h);
    let tenant = env.tenant.0;
    // In pages of two, the two enqueued in one instant fall on either side of a page's end.
    let same = hour(4);
    let rows = [
        (a, "succeeded", hour(1)),
        (b, "failed", hour(2)),
        (c, "succeeded", hour(3)),
        (b, "succeeded", same),
        (c, "running", same),
        (a, "failed", hour(6)),
        (a, "succeeded", hour(7)),
        (a, "unknown_outcome", hour(8)),
    ]
    .map(|(automation, status, at)| Row {
        id: Uuid::now_v7(),
        tenant,
        automation,
        status,
        at,
    });
    let stranger = Row {
        id: Uuid::now_v7(),
        tenant: Uuid::now_v7(),
        automation: a,
        status: "failed",
        at: Utc::now(),
    };
    insert(&env, &rows).await;
    insert(&env, std::slice::from_ref(&stranger)).await;
    let mut older: Vec<&Row> = rows.iter().collect();
    older.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
    let good: Uuid = good.parse().expect("uuid");
    let refused: Uuid = refused.parse().expect("uuid");
    let mut expected = vec![refused, good];
    expected.extend(older.iter().map(|r| r.id));

    let (status, all) = env.call(Method::GET, "/v1/executions", None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(page(&all), (expected.clone(), None), "{all}");
    assert_eq!(all["executions"][0]["automation_id"], lead.as_str());
    assert_eq!(
        all["executions"][0]["result"]["error"]["code"],
        "vendor_rejected"
    );

    // Pages of two; an execution arriving meanwhile (newer than any) is on no later page.
    let late = Row {
        id: Uuid::now_v7(),
        tenant,
        automation: b,
        status: "queued",
        at: Utc::now(),
    };
    let arrives = async || {
        if env
            .query_one("SELECT count(*) FROM executions WHERE id = $1", &[&late.id])
            .await
            .get::<_, i64>(0)
            == 0
        {
            insert(&env, std::slice::from_ref(&late)).await;
        }
    };
    assert_eq!(
        walk(&env, "", arrives).await,
        expected,
        "in order, none skipped or repeated"
    );

    let failed = walk(&env, "&status=failed", async || {}).await;
    let failed_rows = older.iter().filter(|r| r.status == "failed");
    let want: Vec<Uuid> = [refused]
        .into_iter()
        .chain(failed_rows.map(|r| r.id))
        .collect();
    assert_eq!(failed, want);
    let since = (same - Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = walk(&env, &format!("&since={since}"), async || {}).await;
    let mut want = vec![late.id, refused, good];
    want.extend(older.iter().filter(|r| r.at >= same).map(|r| r.id));
    assert_eq!(recent, want, "since {since}");
    env.stop().await;
}

#[tokio::test]
async fn only_readers_list_the_tenants_executions_and_bad_filters_are_named() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let viewer = env.token(Role::Viewer).await;
    let (status, body) = env
        .call_as(&viewer, Method::GET, "/v1/executions", None)
        .await;
    assert_eq!((status.as_u16(), page(&body)), (200, (vec![], None)));
    let service = env.token(Role::Service).await;
    let (status, body) = env
        .call_as(&service, Method::GET, "/v1/executions", None)
        .await;
    assert_eq!(status, 403, "a flow's token lists nothing: {body}");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("status=done", "status"),
        ("since=yesterday", "since"),
        ("since=2026-12-05", "since"),
        ("after=yesterday", "after"),
    ] {
        env.assert_refused(
            Method::GET,
            &format!("/v1/executions?{query}"),
            None,
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    // A page the database takes too long to find (here, the ledger locked) is refused, naming
    // what narrows it, rather than left to hang.
    let err = env
        .refused_while_ledger_locked(Method::GET, "/v1/executions?status=unknown_outcome", None)
        .await;
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown_outcome executions") && message.contains("longer than 5 s"),
        "{err}"
    );
    for (query, field) in [
        ("automation=x", "automation"),
        ("limit=x", "limit"),
        ("limit=2&limit=3", "limit"),
    ] {
        env.assert_refused(
            Method::GET,
            &format!("/v1/executions?{query}"),
            None,
            (422, "invalid_query", Some(field)),
        )
        .await;
    }
    env.stop().await;
}
