//! Two people changing one automation: each change sent with the `ETag` it read (`If-Match`)
//! is made only over the automation as it was read. One made meanwhile by another — a pause, a
//! new parameter table — is never silently undone: the late change is refused with a 412 that
//! says whose change came between, and nothing of it is written. A connection likewise, its
//! ETag moved by what is configured, not by the status the system finds.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Calls the API as `token`, with `If-Match: if_match` when given; the status, the `ETag`
/// answered and the body.
async fn send(
    env: &TestEnv,
    token: &str,
    (method, path): (Method, &str),
    if_match: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = env.api_request(token, method, path);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    let (status, headers, body) = TestEnv::exchange(req, body).await;
    let etag = headers
        .get("etag")
        .map(|v| v.to_str().expect("ascii").to_string());
    (status, etag, body)
}

#[tokio::test]
async fn a_change_sent_over_an_older_read_is_refused_and_changes_nothing() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = env.lead_automation().await;
    let at = format!("/v1/automations/{id}");
    let admin = env.admin_token.clone();
    let bob = env.issued(Role::Editor, "bob").await.token;

    // Both read it: one ETag, the body's revision in quotes.
    let (status, read, a) = send(&env, &admin, (Method::GET, &at), None, None).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let read = read.expect("an automation is answered with its ETag");
    assert_eq!(read, format!("\"{}\"", a["revision"]), "{a}");

    // Bob pauses it, over what he read: done, a new ETag.
    let pause = Some(json!({"status": "paused"}));
    let (status, paused, body) = send(&env, &bob, (Method::PATCH, &at), Some(&read), pause).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let paused = paused.expect("ETag");
    assert_ne!(paused, read);
    assert_eq!(body["status"], "paused");

    // The admin saves the editor as read an hour ago: running, a new description.
    let stale = json!({"status": "running", "description": "Late edit",
        "parameters": a["parameters"], "retry": {"on_throttle": "fail"}});
    let (status, _, body) = send(
        &env,
        &admin,
        (Method::PATCH, &at),
        Some(&read),
        Some(stale.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["error"]["code"], "precondition_failed", "{body}");
    assert_eq!(body["error"]["field"], "If-Match", "{body}");
    let said = body["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("automation.updated by 'bob'"), "{said}");
    assert!(said.contains(&paused), "{said}");
    let (_, tag, now) = send(&env, &admin, (Method::GET, &at), None, None).await;
    assert_eq!(
        (now["status"].as_str(), now["description"].as_str()),
        (
            Some("paused"),
            Some(a["description"].as_str().unwrap_or_default())
        )
    );
    assert_eq!(
        tag.as_deref(),
        Some(paused.as_str()),
        "a refused change moves nothing"
    );

    // Publishing, restoring and deleting over the old read are refused as well.
    let publish = format!("{at}/publish");
    let (status, _, body) = send(&env, &admin, (Method::POST, &publish), Some(&read), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let restore = format!("{at}/versions/1/restore");
    let (status, _, body) = send(&env, &admin, (Method::POST, &restore), Some(&read), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (status, _, body) = send(&env, &admin, (Method::DELETE, &at), Some(&read), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (_, versions) = env.call(Method::GET, &format!("{at}/versions"), None).await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");

    // Read again, the same change goes through; `*` matches whatever it is now.
    let (status, saved, body) = send(
        &env,
        &admin,
        (Method::PATCH, &at),
        Some(&paused),
        Some(stale),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("running")),
        "{body}"
    );
    let saved = saved.expect("ETag");
    let (status, _, body) = send(&env, &admin, (Method::POST, &publish), Some(&saved), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = send(&env, &admin, (Method::DELETE, &at), Some("*"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    env.stop().await;
}

#[tokio::test]
async fn without_if_match_a_change_applies_as_before_and_a_change_of_nothing_keeps_the_etag() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = env.lead_automation().await;
    let at = format!("/v1/automations/{id}");
    let admin = env.admin_token.clone();
    let (_, first, a) = send(&env, &admin, (Method::GET, &at), None, None).await;

    // Saving what is there already is no change: the same ETag, the same time of last change.
    let same = json!({"name": a["name"], "description": a["description"], "status": a["status"], "parameters": a["parameters"]});
    let (status, tag, body) = send(
        &env,
        &admin,
        (Method::PATCH, &at),
        first.as_deref(),
        Some(same),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (tag, &body["updated_at"]),
        (first.clone(), &a["updated_at"]),
        "{body}"
    );

    // No If-Match: applied to the automation as it stands, whatever came before.
    let rename = Some(json!({"description": "Changed without If-Match"}));
    let (status, tag, body) = send(&env, &admin, (Method::PATCH, &at), None, rename).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(tag, first);
    assert_eq!(
        body["revision"],
        a["revision"].as_i64().expect("revision") + 1
    );

    // An If-Match that is no entity tag is named as the header at fault.
    for bad in ["7", "\"unterminated", "W/"] {
        let (status, _, body) = send(
            &env,
            &admin,
            (Method::PATCH, &at),
            Some(bad),
            Some(json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(
            (
                body["error"]["code"].as_str(),
                body["error"]["field"].as_str()
            ),
            (Some("invalid_header"), Some("If-Match")),
            "{bad}"
        );
    }
    env.stop().await;
}

#[tokio::test]
async fn a_connection_moves_its_etag_with_what_is_configured_not_with_its_status() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let connection = env
        .salesforce_connection("Sales org", "right", "right")
        .await;
    let at = format!("/v1/connections/{}", connection["id"].as_str().expect("id"));
    let admin = env.admin_token.clone();
    let bob = env.issued(Role::Editor, "bob").await.token;
    let (_, read, _) = send(&env, &admin, (Method::GET, &at), None, None).await;
    let read = read.expect("a connection is answered with its ETag");

    // A test changes its status (and records an audit event), not what is configured.
    let tested = env
        .test_connection(connection["id"].as_str().expect("id"))
        .await;
    assert_eq!(tested["ok"], true, "{tested}");
    let (_, tag, now) = send(&env, &admin, (Method::GET, &at), None, None).await;
    assert_eq!(now["status"], "connected", "{now}");
    assert_eq!(
        tag.as_deref(),
        Some(read.as_str()),
        "a status is not a change of configuration"
    );

    // Bob renames it; the admin's cap, sent over the old read, is refused: the rename stands.
    let rename = Some(json!({"name": "Sales org (EMEA)"}));
    let (status, renamed, body) = send(&env, &bob, (Method::PATCH, &at), Some(&read), rename).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.test_connection(connection["id"].as_str().expect("id"))
        .await;
    let stale = Some(json!({"name": "Sales org", "max_concurrency": 5}));
    let (status, _, body) = send(&env, &admin, (Method::PATCH, &at), Some(&read), stale).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let said = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("connection.updated by 'bob'"),
        "the last revising change, not the test: {said}"
    );
    let (status, _, body) = send(&env, &admin, (Method::DELETE, &at), Some(&read), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (_, _, now) = send(&env, &admin, (Method::GET, &at), None, None).await;
    assert_eq!(
        (now["name"].as_str(), &now["max_concurrency"]),
        (Some("Sales org (EMEA)"), &Value::Null),
        "{now}"
    );
    let (status, _, body) = send(
        &env,
        &admin,
        (Method::DELETE, &at),
        renamed.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    env.stop().await;
}

/// An edit of the automation at `at` (read at `read`) whose commit a pause by another writer
/// follows at once: its status, ETag and body.
async fn edit_then_paused(
    env: &TestEnv,
    (at, id): (&str, &str),
    read: Option<&str>,
    round: usize,
) -> (StatusCode, Option<String>, Value) {
    // The edit's audit event waits on the tenant's row, locked here, its own row lock held; a
    // pause queues behind that, to commit the moment the edit does.
    let mut locker = env.pool.get().await.expect("a connection");
    let lock = locker.transaction().await.expect("a transaction");
    lock.batch_execute("SELECT 1 FROM tenants FOR UPDATE")
        .await
        .expect("the tenant locked");
    let describe = Some(json!({"description": format!("Round {round}")}));
    let edit = send(env, &env.admin_token, (Method::PATCH, at), read, describe);
    let pause = async {
        env.until_waiting(1).await;
        let other = env.pool.get().await.expect("a connection");
        let uuid = uuid::Uuid::parse_str(id).expect("a uuid");
        // Its commit visible at once, not after its own flush: it lands between the edit's
        // commit and anything read from another connection after it.
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = off; \
             UPDATE automations SET status = 'paused' WHERE id = '{uuid}'; COMMIT"
        );
        let paused = other.batch_execute(&sql);
        let release = async {
            env.until_waiting(2).await;
            lock.rollback().await.expect("released");
        };
        let (paused, ()) = tokio::join!(paused, release);
        paused.expect("paused");
    };
    let (answer, ()) = tokio::join!(edit, pause);
    answer
}

#[tokio::test]
async fn a_change_answers_the_revision_it_made_not_one_committed_right_after_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = env.lead_automation().await;
    let at = format!("/v1/automations/{id}");
    let admin = env.admin_token.clone();
    // A race each round (the pause lands before a read made after the edit's commit about
    // half the time): rounds enough that an answer read after the commit shows.
    for round in 1..=8 {
        let running = Some(json!({"status": "running"}));
        let (_, read, a) = send(&env, &admin, (Method::PATCH, &at), None, running).await;
        let revision = a["revision"].as_i64().expect("revision");
        let (status, tag, body) = edit_then_paused(&env, (&at, &id), read.as_deref(), round).await;

        // The edit answers itself: running, its description, one revision on — not the pause.
        assert_eq!(status, StatusCode::OK, "{body}");
        let own = (Some("running"), Some(revision + 1));
        let answered = (body["status"].as_str(), body["revision"].as_i64());
        assert_eq!(answered, own, "round {round}: {body}");
        assert_eq!(tag, Some(format!("\"{}\"", revision + 1)));
        // So its ETag, sent back with the form as the editor shows it, cannot undo the pause.
        let resume = Some(json!({"status": "running"}));
        let (status, _, body) =
            send(&env, &admin, (Method::PATCH, &at), tag.as_deref(), resume).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
        let (_, _, now) = send(&env, &admin, (Method::GET, &at), None, None).await;
        let paused = (now["status"].as_str(), now["revision"].as_i64());
        assert_eq!(paused, (Some("paused"), Some(revision + 2)), "{now}");
    }
    env.stop().await;
}
