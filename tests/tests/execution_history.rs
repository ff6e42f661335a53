//! An automation's run history over the API: newest first, filtered by status, paged without
//! skipping or repeating an execution, and still readable once the automation is deleted —
//! until its retention deletes finished executions, never an unfinished one.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

/// The ids of a page, and its `next`.
fn page(body: &Value) -> (Vec<String>, Option<String>) {
    let ids = body["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    (ids, body["next"].as_str().map(str::to_string))
}

#[tokio::test]
async fn the_run_history_pages_newest_first_and_filters_by_status() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let history = format!("/v1/automations/{automation}/executions");
    let mut ran = Vec::new();
    for i in 0..5 {
        // Every third one has a blank company, which Salesforce refuses.
        let company = if i % 3 == 2 { "" } else { "Engines" };
        let id = env
            .enqueue(
                &automation,
                json!({"LastName": format!("L{i}"), "Company": company}),
            )
            .await;
        env.wait_final(&id).await;
        ran.push(id);
    }
    ran.reverse(); // newest first

    let (status, all) = env.call(Method::GET, &history, None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(page(&all), (ran.clone(), None));
    let mut walked = Vec::new();
    let mut next = None;
    loop {
        let path = match &next {
            Some(after) => format!("{history}?limit=2&after={after}"),
            None => format!("{history}?limit=2"),
        };
        let (status, body) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let (ids, more) = page(&body);
        assert!(ids.len() <= 2, "{body}");
        walked.extend(ids);
        next = more;
        if next.is_none() {
            break;
        }
    }
    assert_eq!(
        walked, ran,
        "pages of two, in order, none skipped or repeated"
    );

    let (_, failed) = env
        .call(Method::GET, &format!("{history}?status=failed"), None)
        .await;
    assert_eq!(page(&failed).0, vec![ran[2].clone()], "{failed}");
    assert_eq!(
        failed["executions"][0]["result"]["error"]["code"],
        "vendor_rejected"
    );
    let (_, succeeded) = env
        .call(Method::GET, &format!("{history}?status=succeeded"), None)
        .await;
    assert_eq!(page(&succeeded).0.len(), 4, "{succeeded}");

    let (_, later) = env
        .call(
            Method::GET,
            &format!("{history}?since=2099-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!(page(&later), (vec![], None), "none since a later time");
    let (_, recent) = env
        .call(
            Method::GET,
            &format!("{history}?since=2026-01-01T00:00:00Z&status=failed"),
            None,
        )
        .await;
    assert_eq!(page(&recent).0, vec![ran[2].clone()], "{recent}");
    for (query, field) in [
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("status=done", "status"),
        ("after=yesterday", "after"),
    ] {
        env.assert_refused(
            Method::GET,
            &format!("{history}?{query}"),
            None,
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    let unknown = format!("/v1/automations/{}/executions", uuid::Uuid::now_v7());
    assert_eq!(env.call(Method::GET, &unknown, None).await.0, 404);

    // Deleting the automation leaves its history readable.
    env.call(
        Method::DELETE,
        &format!("/v1/automations/{automation}"),
        None,
    )
    .await;
    let (status, kept) = env.call(Method::GET, &history, None).await;
    assert_eq!((status.as_u16(), page(&kept).0.len()), (200, 5), "{kept}");
    env.stop().await;
}

/// Makes `ids` look enqueued 40 days ago and finished `finished_days_ago` days ago.
async fn backdate(env: &TestEnv, ids: &[&str], finished_days_ago: i32) {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.parse().expect("uuid")).collect();
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE executions SET enqueued_at = now() - interval '40 days', \
             finished_at = now() - make_interval(days => $2) WHERE id = ANY($1)",
            &[&ids, &finished_days_ago],
        )
        .await
        .expect("backdated");
}

/// Inserts an execution of another tenant's automation enqueued 40 days ago, `status`, and
/// finished then when `status` is final; its id.
async fn old_row(env: &TestEnv, status: &str) -> String {
    let id = uuid::Uuid::now_v7();
    let finished = status != "running";
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "INSERT INTO executions (id, tenant_id, automation_id, status, enqueued_at, \
               vendor_call_started_at, finished_at) \
             VALUES ($1, gen_random_uuid(), gen_random_uuid(), $2, now() - interval '40 days', \
               now() - interval '40 days', CASE WHEN $3 THEN now() - interval '40 days' END)",
            &[&id, &status, &finished],
        )
        .await
        .expect("an old row");
    id.to_string()
}

/// The ids among `ids` still in the ledger.
async fn kept(env: &TestEnv, ids: &[&str]) -> Vec<String> {
    let all: Vec<uuid::Uuid> = ids.iter().map(|id| id.parse().expect("uuid")).collect();
    let rows = env
        .pool
        .get()
        .await
        .expect("db")
        .query("SELECT id FROM executions WHERE id = ANY($1)", &[&all])
        .await
        .expect("rows");
    let found: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, uuid::Uuid>(0).to_string())
        .collect();
    ids.iter()
        .filter(|id| found.contains(&id.to_string()))
        .map(|id| id.to_string())
        .collect()
}

/// `prune-executions` deletes the executions that finished before the retention, of every
/// tenant and automation, and keeps the recent ones and every unfinished one, however old (its
/// vendor call may have been sent: a replay must find it).
#[tokio::test]
async fn retention_deletes_finished_executions_older_than_it_keeps_and_nothing_unfinished() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let mut ran = Vec::new();
    for i in 0..4 {
        let body = json!({"LastName": format!("R{i}"), "Company": "Old Co"});
        ran.push(
            env.run(&automation, body).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let (old_a, old_b, late, recent) = (&ran[0], &ran[1], &ran[2], &ran[3]);
    backdate(&env, &[old_a, old_b], 39).await;
    // Enqueued long ago, finished within the retention (a long wait behind a cool-down).
    backdate(&env, &[late], 2).await;
    let elsewhere = old_row(&env, "failed").await;
    let in_doubt = old_row(&env, "unknown_outcome").await;
    let unfinished = old_row(&env, "running").await;
    let all = [
        old_a,
        old_b,
        late,
        recent,
        &elsewhere,
        &in_doubt,
        &unfinished,
    ];
    let all: Vec<&str> = all.iter().map(|s| s.as_str()).collect();

    let (db, _) = env.settings();
    let out = std::process::Command::new(TestEnv::binary("aic-control-plane"))
        .args(["prune-executions", "--keep-days", "30"])
        .env(
            "AIC_DATABASE_URL",
            secrecy::ExposeSecret::expose_secret(&db.database_url),
        )
        .output()
        .expect("aic-control-plane runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said.trim(), "executions deleted: 4");
    assert_eq!(kept(&env, &all).await, [late.as_str(), recent, &unfinished]);
    let (status, _) = env
        .call(Method::GET, &format!("/v1/executions/{old_a}"), None)
        .await;
    assert_eq!(status, 404);
    let history = format!("/v1/automations/{automation}/executions");
    let (_, left) = env.call(Method::GET, &history, None).await;
    assert_eq!(page(&left).0, vec![recent.clone(), late.clone()], "{left}");
    assert!(
        aic_control_plane::retention::prune_executions(&env.pool, 0)
            .await
            .is_err(),
        "0 days kept"
    );
    env.stop().await;
}

/// A control plane given `AIC_EXECUTIONS_KEEP_DAYS` prunes by itself, again and again.
#[tokio::test]
async fn an_execution_retention_set_on_the_control_plane_prunes_on_its_own() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let retention = aic_control_plane::retention::Retention {
        audit_days: None,
        executions_days: Some(30),
    };
    let every = std::time::Duration::from_millis(100);
    let task = tokio::spawn(aic_control_plane::retention::retain(
        env.pool.clone(),
        retention,
        every,
    ));
    for round in 0..2 {
        let old = old_row(&env, "succeeded").await;
        let started = std::time::Instant::now();
        while !kept(&env, &[&old]).await.is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "round {round}: not pruned"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    task.abort();
    env.stop().await;
}
