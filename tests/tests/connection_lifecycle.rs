//! A connection's life after its creation, through the API: re-authorised after the vendor
//! revoked its grant, renamed and capped with its edits checked, and deleted only once no
//! automation runs on it.

use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// The connection's secret version and sealed ciphertext, straight from the database.
async fn sealed(env: &TestEnv, id: &str) -> (i32, Vec<u8>) {
    let row = env
        .query_one(
            "SELECT secret_version, secret_ciphertext FROM connections WHERE id = $1::text::uuid",
            &[&id],
        )
        .await;
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn new_secrets_bring_a_connection_back_from_needing_reauthorisation() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    org.add_client("3MVG9reauth", "reauth-client-secret");
    org.add_refresh_token("5Aep861-first-grant");
    let conn = env
        .connection("SF", "salesforce", "oauth2_refresh_token", json!({"client_id": "3MVG9reauth", "client_secret": "reauth-client-secret", "refresh_token": "5Aep861-first-grant"}))
        .await;
    let id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", id, "Lead", None)
        .await;
    let path = format!("/v1/connections/{id}");
    let first = env
        .run(&lead, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let (_, read) = env.call(Method::GET, &path, None).await;
    assert_eq!(
        read["status"], "connected",
        "a first success proves a new connection: {read}"
    );
    org.revoke_refresh_token("5Aep861-first-grant");
    org.expire_tokens();
    let refused = env
        .run(&lead, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(
        refused["result"]["error"]["code"], "connection_needs_reauthorization",
        "{refused}"
    );
    let before = sealed(&env, id).await;

    org.add_refresh_token("5Aep861-second-grant");
    // Only the field that changes: the others stay as saved (they cannot be read back).
    let secrets = json!({"refresh_token": "5Aep861-second-grant"});
    let (status, updated) = env
        .call(Method::PATCH, &path, Some(json!({"secrets": secrets})))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "untested", "{updated}");
    assert!(updated["status_detail"].is_null(), "{updated}");
    for secret in ["5Aep861-second-grant", "reauth-client-secret"] {
        assert!(!updated.to_string().contains(secret), "{updated}");
    }
    let after = sealed(&env, id).await;
    assert_eq!(after.0, before.0 + 1, "a new version of the secrets");
    assert_ne!(after.1, before.1, "sealed again");

    let done = env
        .run(&lead, json!({"LastName": "C", "Company": "D"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, read) = env.call(Method::GET, &path, None).await;
    assert_eq!(
        read["status"], "connected",
        "a success proves the new secrets: {read}"
    );
    let tested = env.test_connection(id).await;
    assert_eq!(
        (tested["ok"].as_bool(), tested["status"].as_str()),
        (Some(true), Some("connected")),
        "{tested}"
    );
    env.stop().await;
}

#[tokio::test]
async fn connection_edits_are_checked_field_by_field() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let conn = env
        .salesforce_connection("Sales org", "s3cret", "s3cret")
        .await;
    env.salesforce_connection("Other org", "s3cret", "s3cret")
        .await;
    let id = conn["id"].as_str().expect("id");
    let path = format!("/v1/connections/{id}");
    let before = sealed(&env, id).await;
    let cases: [(Value, u16, &str, Option<&str>); 11] = [
        (json!({"name": ""}), 422, "validation_failed", Some("name")),
        // Not read as left out, a 200 that would have changed nothing.
        (json!({"domain": null}), 422, "invalid_body", Some("domain")),
        (
            json!({"secrets": null}),
            422,
            "invalid_body",
            Some("secrets"),
        ),
        (json!({"name": "Other org"}), 409, "name_taken", None),
        (
            json!({"max_concurrency": 0}),
            422,
            "validation_failed",
            Some("max_concurrency"),
        ),
        (
            json!({"auth_type": "oauth2_jwt_bearer"}),
            422,
            "validation_failed",
            Some("secrets"),
        ),
        // Another auth type takes its whole set of secrets, none of the saved ones.
        (
            json!({"auth_type": "username_password", "secrets": {"client_id": "x"}}),
            422,
            "validation_failed",
            Some("secrets.client_secret"),
        ),
        (
            json!({"secrets": {"client_id": " "}}),
            422,
            "validation_failed",
            Some("secrets.client_id"),
        ),
        (
            json!({"secrets": {"colour": "red"}}),
            422,
            "validation_failed",
            Some("secrets.colour"),
        ),
        (
            json!({"domain": "http://10.0.0.1"}),
            422,
            "validation_failed",
            Some("domain"),
        ),
        (json!({"app": "jira"}), 422, "invalid_body", Some("app")),
    ];
    for (body, status, code, field) in cases {
        env.assert_refused(Method::PATCH, &path, Some(body), (status, code, field))
            .await;
    }
    assert_eq!(
        sealed(&env, id).await,
        before,
        "refused edits change nothing"
    );

    assert_eq!(conn["creator"], "initial admin", "{conn}");
    let (status, capped) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Sales", "max_concurrency": 4})),
        )
        .await;
    assert_eq!(status, 200, "{capped}");
    assert_eq!(
        (capped["name"].as_str(), capped["max_concurrency"].as_i64()),
        (Some("Sales"), Some(4))
    );
    assert_eq!(
        sealed(&env, id).await,
        before,
        "a rename keeps the secrets' version"
    );
    let (_, uncapped) = env
        .call(Method::PATCH, &path, Some(json!({"max_concurrency": null})))
        .await;
    assert!(uncapped["max_concurrency"].is_null(), "{uncapped}");
    assert_eq!(uncapped["name"], "Sales");
    assert_eq!(
        env.call(Method::PATCH, "/v1/connections/nope", Some(json!({})))
            .await
            .0,
        404
    );
    env.stop().await;
}

#[tokio::test]
async fn a_connection_is_deleted_only_once_nothing_runs_on_it() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let first = env
        .salesforce_connection("First org", "s3cret", "s3cret")
        .await;
    let second = env
        .salesforce_connection("Second org", "s3cret", "s3cret")
        .await;
    let (first, second) = (
        first["id"].as_str().expect("id"),
        second["id"].as_str().expect("id"),
    );
    let lead = env
        .published_automation("salesforce.create_lead", first, "Lead", None)
        .await;
    let first_path = format!("/v1/connections/{first}");
    let delete_first = || env.call(Method::DELETE, &first_path, None);

    let (status, err) = delete_first().await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("connection_in_use")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'Lead'"),
        "{err}"
    );
    // The draft moves to the second connection; the live version still runs on the first.
    let lead_path = format!("/v1/automations/{lead}");
    env.call(
        Method::PATCH,
        &lead_path,
        Some(json!({"connection_id": second})),
    )
    .await;
    assert_eq!(delete_first().await.0, 409, "the live version runs on it");
    for (path, count) in [(&first_path, 1), (&format!("/v1/connections/{second}"), 1)] {
        let (_, conn) = env.call(Method::GET, path, None).await;
        assert_eq!(
            conn["automations"], count,
            "draft and live version each count: {conn}"
        );
    }

    env.call(Method::POST, &format!("{lead_path}/publish"), None)
        .await;
    assert_eq!(delete_first().await.0, 204);
    assert_eq!(env.call(Method::GET, &first_path, None).await.0, 404);
    // Version 1 ran on the deleted connection: it cannot be made live again.
    let (status, err) = env
        .call(
            Method::POST,
            &format!("{lead_path}/versions/1/restore"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("connection_missing")),
        "{err}"
    );
    let (_, still) = env.call(Method::GET, &lead_path, None).await;
    assert_eq!(still["published_version"]["number"], 2, "{still}");
    assert_eq!(delete_first().await.0, 404);
    env.stop().await;
}

/// Runs `held`, which stops at a lock `lock` holds, then `then` once it waits; releases the
/// lock once `then` waits too (or is done without waiting): the two answers.
async fn race<A, B>(
    env: &TestEnv,
    lock: deadpool_postgres::Transaction<'_>,
    held: A,
    then: B,
) -> ((StatusCode, Value), (StatusCode, Value))
where
    A: std::future::Future<Output = (StatusCode, Value)>,
    B: std::future::Future<Output = (StatusCode, Value)>,
{
    let second = async {
        env.until_waiting(1).await;
        let release = async {
            env.waiting_within(2, Duration::from_secs(2)).await;
            lock.rollback().await.expect("released");
        };
        let (answer, ()) = tokio::join!(then, release);
        answer
    };
    tokio::join!(held, second)
}

/// An automation created on a connection while an admin deletes that connection: whichever
/// goes first wins whole — the automation created and the deletion refused as in use, or the
/// deletion done and the creation refused for want of the connection — never a 500 from a
/// creation that checked the connection, then found it gone when it wrote.
#[tokio::test]
async fn a_connection_deleted_while_an_automation_is_created_on_it_leaves_one_answer_whole() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let other = env
        .salesforce_connection("Other", "s3cret-value", "s3cret-value")
        .await;
    for creation_first in [true, false] {
        let doomed = env
            .salesforce_connection(
                &format!("Doomed {creation_first}"),
                "s3cret-value",
                "s3cret-value",
            )
            .await;
        let doomed = doomed["id"].as_str().expect("id");
        let name = format!("Race {creation_first}");
        let mut locker = env.pool.get().await.expect("a connection");
        let lock = locker.transaction().await.expect("a transaction");
        if creation_first {
            // Another automation of that name, uncommitted: the creation checks the
            // connection, then waits at the name.
            let sql = "INSERT INTO automations (id, tenant_id, connection_id, app, action, name, \
                       parameters) VALUES (gen_random_uuid(), $1, $2::text::uuid, 'salesforce', \
                       'create_lead', $3, '[]')";
            let other = other["id"].as_str().expect("id");
            lock.execute(sql, &[&env.tenant.0, &other, &name]).await
        } else {
            // The tenant's row: the deletion, the connection deleted, waits at its audit event.
            lock.execute("SELECT 1 FROM tenants FOR UPDATE", &[]).await
        }
        .expect("held");
        let body =
            json!({"template": "salesforce.create_lead", "connection_id": doomed, "name": name});
        let create = env.call(Method::POST, "/v1/automations", Some(body));
        let at = format!("/v1/connections/{doomed}");
        let delete = env.call(Method::DELETE, &at, None);
        let ((created_status, created), (deleted_status, deleted)) = if creation_first {
            race(&env, lock, create, delete).await
        } else {
            let (deleted, created) = race(&env, lock, delete, create).await;
            (created, deleted)
        };
        let (_, list) = env.call(Method::GET, "/v1/automations", None).await;
        let on_doomed = list
            .as_array()
            .expect("automations")
            .iter()
            .filter(|a| a["connection_id"] == doomed)
            .count();
        let (read, _) = env.call(Method::GET, &at, None).await;
        let answers = (created_status.as_u16(), deleted_status.as_u16());
        println!(
            "creation first: {creation_first}: {answers:?}, {}; {deleted}",
            created["error"]
        );
        if creation_first {
            assert_eq!(answers, (201, 409), "{created} / {deleted}");
            assert_eq!(deleted["error"]["code"], "connection_in_use", "{deleted}");
            assert_eq!((on_doomed, read.as_u16()), (1, 200));
        } else {
            assert_eq!(answers, (422, 204), "{created} / {deleted}");
            assert_eq!(created["error"]["field"], "connection_id", "{created}");
            assert_eq!((on_doomed, read.as_u16()), (0, 404));
        }
    }
    env.stop().await;
}
