//! The control plane's API contract: authentication, roles, tenant isolation, write-only
//! secrets, immutable versions (connection set-up errors: `connection_setup.rs`).

use aic_control_plane::auth::Role;
use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (status, body) = env.call_as("", Method::GET, "/v1/connections", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = env
        .call_as("aic_not-a-real-token", Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    env.stop().await;
}

#[tokio::test]
async fn each_role_does_only_what_it_may() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let viewer = env.token(Role::Viewer).await;
    let service = env.token(Role::Service).await;
    let conn = json!({"name": "x", "app": "salesforce", "domain": env.sandbox.url(), "auth_type": "oauth2_client_credentials", "secrets": {"client_id": "a", "client_secret": "b"}});

    let (status, body) = env
        .call_as(&viewer, Method::POST, "/v1/connections", Some(conn.clone()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("admin, editor")
    );
    assert_eq!(
        env.call_as(&viewer, Method::GET, "/v1/connections", None)
            .await
            .0,
        200
    );
    let run = Some(json!({"parameters": {"LastName": "A", "Company": "B"}}));
    assert_eq!(
        env.call_as(
            &viewer,
            Method::POST,
            &format!("/v1/automations/{automation}/executions"),
            run.clone()
        )
        .await
        .0,
        403
    );
    assert_eq!(
        env.call_as(
            &service,
            Method::POST,
            &format!("/v1/automations/{automation}/executions"),
            run
        )
        .await
        .0,
        202
    );
    assert_eq!(
        env.call_as(&service, Method::POST, "/v1/connections", Some(conn))
            .await
            .0,
        403
    );
    assert_eq!(
        env.call_as(&service, Method::GET, "/v1/connections", None)
            .await
            .0,
        403
    );
    env.stop().await;
}

#[tokio::test]
async fn another_tenant_sees_nothing_of_this_one() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let execution = env
        .enqueue(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    let other = aic_control_plane::tenants::create_tenant(&env.pool, "globex")
        .await
        .expect("tenant")
        .token;
    let (_, list) = env
        .call_as(&other, Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(list, json!([]));
    assert_eq!(
        env.call_as(
            &other,
            Method::GET,
            &format!("/v1/automations/{automation}"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        env.call_as(
            &other,
            Method::GET,
            &format!("/v1/executions/{execution}"),
            None
        )
        .await
        .0,
        404
    );
    let run = Some(json!({"parameters": {"LastName": "A", "Company": "B"}}));
    assert_eq!(
        env.call_as(
            &other,
            Method::POST,
            &format!("/v1/automations/{automation}/executions"),
            run
        )
        .await
        .0,
        404
    );
    env.stop().await;
}

#[tokio::test]
async fn secrets_are_write_only_and_sealed_at_rest() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let secret = "very-secret-client-secret-0042";
    let conn = env.salesforce_connection("Sealed", secret, secret).await;
    let id = conn["id"].as_str().expect("id");
    assert_eq!(conn["secret_fields"], json!(["client_id", "client_secret"]));
    for path in [
        "/v1/connections".to_string(),
        format!("/v1/connections/{id}"),
    ] {
        let (_, body) = env.call(Method::GET, &path, None).await;
        assert!(
            !body.to_string().contains(secret),
            "secret returned by {path}"
        );
    }
    let test = env.test_connection(id).await;
    assert_eq!(test["ok"], true, "{test}");
    let client = env.pool.get().await.expect("db");
    let row = client
        .query_one(
            "SELECT secret_ciphertext, secret_key_id FROM connections WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("row");
    let ciphertext: Vec<u8> = row.get(0);
    assert!(
        !ciphertext
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "stored in clear"
    );
    assert_eq!(row.get::<_, String>(1), "test");
    env.stop().await;
}

#[tokio::test]
async fn published_versions_are_immutable_and_numbered() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let params = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await;
    let path = format!("/v1/automations/{automation}");
    let (status, edited) = env
        .call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;
    assert_eq!(status, 200, "{edited}");
    let (status, v2) = env
        .call(
            Method::POST,
            &format!("{path}/publish"),
            Some(json!({"version_name": "Second"})),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(
        (v2["number"].as_i64(), v2["name"].as_str()),
        (Some(2), Some("Second"))
    );
    let client = env.pool.get().await.expect("db");
    let err = client
        .execute("UPDATE automation_versions SET definition = '{}'::jsonb WHERE automation_id = $1::text::uuid", &[&automation])
        .await
        .expect_err("versions cannot change");
    assert!(
        err.to_string().contains("immutable") || format!("{err:?}").contains("immutable"),
        "{err:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_with_its_reason() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let post = |content_type: &'static str, body: &'static str| {
        http.post(format!("{}/v1/connections", env.api))
            .bearer_auth(&env.admin_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let resp = post("text/plain", r#"{"name": "n"}"#)
        .await
        .expect("answer");
    assert_eq!(resp.status(), 415);
    let resp = post("application/json", r#"{"name": "#)
        .await
        .expect("answer");
    assert_eq!(resp.status(), 422);
    let err: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["code"], "invalid_body", "{err}");
    // The escape written out as text (a backslash, then `u0000`) is no NUL character: the body
    // goes on to the usual checks, which name the missing field.
    let resp = post("application/json", r#"{"name": "a\\u0000"}"#)
        .await
        .expect("answer");
    assert_eq!(resp.status(), 422);
    let err: serde_json::Value = resp.json().await.expect("json");
    assert_ne!(err["error"]["field"], "name", "{err}");
    assert!(
        !err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("NUL"),
        "{err}"
    );
    env.stop().await;
}
