//! Running a finished execution again (`POST /v1/executions/{id}/rerun`): with its values, as a
//! new execution linked to the first, on the automation's live version; an in-doubt or
//! succeeded one only when asked by its status; never one still queued or running.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use reqwest::Method;
use serde_json::{Value, json};

/// Runs `execution` again with `body`; the answer's status and body.
async fn rerun(env: &TestEnv, execution: &str, body: Option<Value>) -> (u16, Value) {
    let (status, answer) = env
        .call(
            Method::POST,
            &format!("/v1/executions/{execution}/rerun"),
            body,
        )
        .await;
    (status.as_u16(), answer)
}

/// The parameter values and source the ledger holds for `execution`.
async fn recorded(env: &TestEnv, execution: &str) -> (Value, Option<String>) {
    let id: uuid::Uuid = execution.parse().expect("uuid");
    let row = env
        .query_one(
            "SELECT parameters, source FROM executions WHERE id = $1",
            &[&id],
        )
        .await;
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_finished_execution_runs_again_with_its_values() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let values = json!({"LastName": "Lovelace", "Company": ""});
    let first = env.enqueue(&lead, values.clone()).await;
    assert_eq!(env.wait_final(&first).await["status"], "failed");

    let (status, again) = rerun(&env, &first, None).await;
    assert_eq!(status, 202, "{again}");
    let second = again["execution_id"].as_str().expect("id").to_string();
    assert_ne!(second, first);
    let done = env.wait_final(&second).await;
    assert_eq!(done["status"], "failed", "the same values, refused again");
    assert_eq!(
        done["result"]["error"]["vendor"]["fields"],
        json!(["Company"])
    );
    assert_eq!(
        recorded(&env, &second).await,
        (values, Some(format!("rerun:{first}")))
    );

    // The caller's own id makes a re-run idempotent: sent twice, it runs once.
    let mine = uuid::Uuid::now_v7().to_string();
    for _ in 0..2 {
        let (status, body) = rerun(&env, &first, Some(json!({"execution_id": mine}))).await;
        assert_eq!(
            (status, body["execution_id"].as_str()),
            (202, Some(mine.as_str()))
        );
    }
    env.wait_final(&mine).await;
    let runs = env
        .query_one(
            "SELECT count(*) FROM executions WHERE source = $1",
            &[&format!("rerun:{first}")],
        )
        .await;
    assert_eq!(runs.get::<_, i64>(0), 2, "the first re-run and this one");
    // An id another execution holds answers as that one, and links nothing.
    let (status, taken) = rerun(&env, &first, Some(json!({"execution_id": second}))).await;
    assert_eq!(
        (status, taken["execution_id"].as_str()),
        (202, Some(second.as_str()))
    );
    let (_, linked) = env
        .call(Method::GET, &format!("/v1/executions/{first}"), None)
        .await;
    assert_eq!(linked["rerun_id"], mine.as_str(), "still its latest re-run");

    // The vendor applied the create but its answer was lost: in doubt, it runs again only
    // when asked by that status — and then does its action a second time.
    env.sandbox.state.faults.push([Fault::ResetAfterApply]);
    let doubtful = env
        .enqueue(&lead, json!({"LastName": "Hopper", "Company": "Navy"}))
        .await;
    assert_eq!(env.wait_final(&doubtful).await["status"], "unknown_outcome");
    let (status, refused) = rerun(&env, &doubtful, Some(json!({}))).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "execution_may_have_acted");
    let (status, again) = rerun(&env, &doubtful, Some(json!({"allow": "unknown_outcome"}))).await;
    assert_eq!(status, 202, "{again}");
    let allowed = again["execution_id"].as_str().expect("id");
    let done = env.wait_final(allowed).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, refused) = rerun(&env, done["id"].as_str().expect("id"), None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("execution_may_have_acted"))
    );

    // Each re-run is in the audit trail, newest first: who ran which execution again, and the
    // status they allowed; the one sent twice once, the refused ones not at all.
    let events = env.audit_events("?action=automation.execution_rerun").await;
    let details: Vec<&Value> = events.iter().map(|e| &e["detail"]).collect();
    assert_eq!(
        details,
        [
            &json!({"execution_id": doubtful, "rerun_id": allowed, "allow": "unknown_outcome"}),
            &json!({"execution_id": first, "rerun_id": mine}),
            &json!({"execution_id": first, "rerun_id": second}),
        ]
    );
    for event in &events {
        assert_eq!(
            (
                &event["target_kind"],
                &event["target_id"],
                &event["actor_role"]
            ),
            (&json!("automation"), &json!(lead), &json!("admin")),
            "{event}"
        );
        assert_eq!(event["target_name"], "Create lead", "{event}");
    }
    env.stop().await;
}

#[tokio::test]
async fn an_unfinished_or_unreachable_execution_is_not_run_again() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    // No worker: it stays queued.
    let queued = env
        .enqueue(&lead, json!({"LastName": "Ada", "Company": "Engines"}))
        .await;
    let (status, refused) = rerun(&env, &queued, None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "execution_not_finished");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("is queued"), "{refused}");

    for (path, body, field) in [
        ("/v1/executions/rerun", json!({}), "since"),
        ("/v1/executions/rerun", json!({"since": "today"}), "since"),
        (
            "/v1/executions/rerun",
            json!({"since": "2026-12-05T00:00:00Z", "limit": 0}),
            "limit",
        ),
    ] {
        let (status, err) = env.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(
            err["error"]["field"] == field || message.contains(field),
            "{body}: {err}"
        );
    }
    for (body, field) in [
        (json!({"allow": "yes"}), "allow"),
        (json!({"wait_ms": 40_000}), "wait_ms"),
    ] {
        env.assert_refused(
            Method::POST,
            &format!("/v1/executions/{queued}/rerun"),
            Some(body),
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    let unknown = format!("/v1/executions/{}/rerun", uuid::Uuid::now_v7());
    assert_eq!(env.call(Method::POST, &unknown, None).await.0, 404);

    // A token limited to another automation reaches neither the execution nor its re-run; a
    // viewer runs nothing.
    let other = env.lead_beside(&lead, "Other").await;
    let (status, limited) = env
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "bot", "role": "service", "automations": [other]})),
        )
        .await;
    assert_eq!(status, 201, "{limited}");
    let path = format!("/v1/executions/{queued}/rerun");
    let token = limited["token"].as_str().expect("token");
    let (status, body) = env.call_as(token, Method::POST, &path, None).await;
    assert_eq!(status, 403, "{body}");
    let viewer = env.token(aic_control_plane::auth::Role::Viewer).await;
    assert_eq!(env.call_as(&viewer, Method::POST, &path, None).await.0, 403);
    // Running every failure again is the admins' and editors' alone.
    let bulk = json!({"since": "2026-12-05T00:00:00Z"});
    let service = env.token(aic_control_plane::auth::Role::Service).await;
    let (status, body) = env
        .call_as(&service, Method::POST, "/v1/executions/rerun", Some(bulk))
        .await;
    assert_eq!(status, 403, "{body}");

    // Finding the failures bounded like a page of the listing: with the ledger locked, refused
    // within seconds naming `since`, not left waiting.
    let bulk = json!({"since": "2026-01-01T00:00:00Z"});
    let err = env
        .refused_while_ledger_locked(Method::POST, "/v1/executions/rerun", Some(bulk))
        .await;
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the failures to run again"), "{err}");
    env.stop().await;
}

/// `POST /v1/executions/rerun` with `body`: the ids it ran again (failed one, its re-run), the
/// refusals, and whether others are left (a `next`).
async fn rerun_failures(env: &TestEnv, body: Value) -> (Vec<(String, String)>, Vec<Value>, bool) {
    let (status, answer) = env
        .call(Method::POST, "/v1/executions/rerun", Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut ran = Vec::new();
    let mut refused = Vec::new();
    for item in answer["reruns"].as_array().expect("reruns") {
        match item["rerun_id"].as_str() {
            Some(rerun) => ran.push((
                item["execution_id"].as_str().expect("id").into(),
                rerun.into(),
            )),
            None => refused.push(item.clone()),
        }
    }
    (ran, refused, answer["next"].is_string())
}

#[tokio::test]
async fn the_failures_since_a_time_run_again_each_once() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let blank = json!({"LastName": "Lovelace", "Company": ""});
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(env.enqueue(&lead, blank.clone()).await);
    }
    let good = env
        .enqueue(&lead, json!({"LastName": "Ada", "Company": "Engines"}))
        .await;
    for id in failed.iter().chain([&good]) {
        env.wait_final(id).await;
    }
    // One failed before the window; a paused automation's failure waits until it runs.
    let old: uuid::Uuid = failed[0].parse().expect("uuid");
    env.query_one(
        "UPDATE executions SET enqueued_at = now() - interval '2 days' WHERE id = $1 RETURNING 1",
        &[&old],
    )
    .await;
    let paused = env.lead_beside(&lead, "Paused").await;
    let held = env.enqueue(&paused, blank.clone()).await;
    env.wait_final(&held).await;
    let (status, _) = env
        .call(
            Method::PATCH,
            &format!("/v1/automations/{paused}"),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 200);

    let since = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (ran, refused, more) = rerun_failures(&env, json!({"since": since, "limit": 1})).await;
    assert_eq!((ran.len(), refused.len(), more), (1, 0, true));
    assert_eq!(ran[0].0, failed[1], "the oldest in the window first");
    let r1 = ran[0].1.clone();
    assert_eq!(env.wait_final(&r1).await["status"], "failed");
    let (_, linked) = env
        .call(Method::GET, &format!("/v1/executions/{}", failed[1]), None)
        .await;
    assert_eq!(linked["rerun_id"], r1.as_str(), "{linked}");

    // The next call takes the failure left, and the re-run that failed again: each failure no
    // run followed yet.
    let (ran, refused, more) = rerun_failures(&env, json!({"since": since})).await;
    assert_eq!(
        refused,
        Vec::<Value>::new(),
        "the one run again before is not taken"
    );
    let taken: Vec<&str> = ran.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        (taken, more),
        (vec![failed[2].as_str(), r1.as_str()], false)
    );
    for (_, rerun) in &ran {
        env.wait_final(rerun).await;
    }

    // Two at once run each of those once between them.
    let body = json!({"since": since});
    let (a, b) = tokio::join!(
        rerun_failures(&env, body.clone()),
        rerun_failures(&env, body)
    );
    let mut firsts: Vec<String> = a.0.iter().chain(&b.0).map(|(f, _)| f.clone()).collect();
    firsts.sort();
    let mut heads: Vec<String> = ran.iter().map(|(_, r)| r.clone()).collect();
    heads.sort();
    assert_eq!(firsts, heads, "each once: {a:?} {b:?}");
    for refusal in a.1.iter().chain(&b.1) {
        assert_eq!(refusal["error"]["code"], "already_rerun", "{refusal}");
    }
    // Each re-run is audited once; the loser's refusals are not.
    let mut audited: Vec<(String, String)> = env
        .audit_events("?action=automation.execution_rerun")
        .await
        .iter()
        .map(|e| {
            let pair = |k: &str| e["detail"][k].as_str().expect("an id").to_string();
            (pair("execution_id"), pair("rerun_id"))
        })
        .collect();
    let mut done: Vec<(String, String)> = [(failed[1].clone(), r1.clone())]
        .into_iter()
        .chain(ran.iter().chain(&a.0).chain(&b.0).cloned())
        .collect();
    audited.sort();
    done.sort();
    assert_eq!(audited, done);

    // Failures whose values no longer fit the live version are listed with their error and
    // left; `next` goes on past them.
    let unfit: Vec<uuid::Uuid> = (0..2).map(|_| uuid::Uuid::now_v7()).collect();
    let lead_id: uuid::Uuid = lead.parse().expect("uuid");
    for (i, id) in unfit.iter().enumerate() {
        env.query_one(
            "INSERT INTO executions (id, tenant_id, automation_id, status, parameters, \
               enqueued_at, finished_at) \
             VALUES ($1, $2, $3, 'failed', '{}', now() - make_interval(hours => 2 - $4), now()) \
             RETURNING 1",
            &[id, &env.tenant.0, &lead_id, &(i as i32)],
        )
        .await;
    }
    let one = json!({"since": since, "limit": 1});
    let (status, answer) = env
        .call(Method::POST, "/v1/executions/rerun", Some(one.clone()))
        .await;
    assert_eq!(status, 200, "{answer}");
    let item = &answer["reruns"][0];
    assert_eq!(item["execution_id"], unfit[0].to_string(), "{answer}");
    assert_eq!(item["error"]["field"], "parameters.LastName", "{answer}");
    let next = answer["next"].as_str().expect("more are left").to_string();
    let (_, again) = env
        .call(Method::POST, "/v1/executions/rerun", Some(one))
        .await;
    assert_eq!(
        again["reruns"][0]["execution_id"], item["execution_id"],
        "left, it comes first again"
    );
    let on = json!({"since": since, "limit": 1, "after": next});
    let (_, past) = env
        .call(Method::POST, "/v1/executions/rerun", Some(on))
        .await;
    assert_eq!(
        past["reruns"][0]["execution_id"],
        unfit[1].to_string(),
        "{past}"
    );
    env.stop().await;
}
