//! The control plane's API contract: authentication, roles, tenant isolation, write-only
//! secrets, and connection set-up errors that name the field.

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
async fn connection_setup_errors_name_the_field() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let base = json!({"name": "n", "app": "salesforce", "domain": "https://acme.my.salesforce.com", "auth_type": "oauth2_client_credentials", "secrets": {"client_id": "a", "client_secret": "b"}});
    let cases = [
        ("/auth_type", json!("kerberos"), "auth_type"),
        ("/app", json!("nope"), "app"),
        ("/domain", json!("http://acme.my.salesforce.com"), "domain"),
        ("/domain", json!("https://evil.example.com"), "domain"),
        ("/domain", json!("https://169.254.169.254"), "domain"),
        (
            "/domain",
            json!("https://acme.my.salesforce.com/lightning/page/home"),
            "domain",
        ),
        (
            "/domain",
            json!("https://adm1n:pw-s3cret@acme.my.salesforce.com"),
            "domain",
        ),
        (
            "/secrets",
            json!({"client_id": "a"}),
            "secrets.client_secret",
        ),
        (
            "/secrets",
            json!({"client_id": "a", "client_secret": "b", "password": "c"}),
            "secrets.password",
        ),
    ];
    for (pointer, value, field) in cases {
        let copied = value.to_string().contains("/lightning");
        let mut body = base.clone();
        *body.pointer_mut(pointer).expect("pointer") = value;
        let (status, err) = env.call(Method::POST, "/v1/connections", Some(body)).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(
            !message.contains("s3cret") && !message.contains("adm1n"),
            "{err}"
        );
        if copied {
            assert!(
                message.contains("without a path ('/lightning/page/home')"),
                "{err}"
            );
        }
    }
    let (status, err) = env
        .call(Method::POST, "/v1/connections", Some(json!({"name": "n"})))
        .await;
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("missing field"),
        "{err}"
    );
    let mut base = base;
    base["domain"] = json!(env.sandbox.url());
    let (_, ok) = env
        .call(Method::POST, "/v1/connections", Some(base.clone()))
        .await;
    assert_eq!(ok["status"], "untested");
    let (status, err) = env.call(Method::POST, "/v1/connections", Some(base)).await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("name_taken"))
    );
    env.stop().await;
}

#[tokio::test]
async fn each_vendors_setup_mistakes_are_named() {
    let env = TestEnv::start_with(aic_tests::harness::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let sandbox = env.sandbox.url();
    let cases = [
        (
            json!({"app": "jira", "auth_type": "oauth1", "secrets": {}}),
            "auth_type",
            "not supported by Jira Cloud",
        ),
        (
            json!({"app": "jira", "auth_type": "basic", "secrets": {"email": "a@b.c"}}),
            "secrets.api_token",
            "'api_token' is required",
        ),
        (
            json!({"app": "servicenow", "auth_type": "basic", "secrets": {"username": "u"}}),
            "secrets.password",
            "'password' is required",
        ),
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "  "}}),
            "secrets.bot_token",
            "'bot_token' is required",
        ),
        (
            json!({"app": "salesforce", "auth_type": "oauth2_jwt_bearer", "secrets": {"client_id": "a", "username": "u", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"}}),
            "secrets.private_key",
            "not an RSA private key in PEM format",
        ),
        // A token copied with the line break after it.
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "xoxb-1-2-abc\n"}}),
            "secrets.bot_token",
            "'bot_token' begins or ends with white space",
        ),
        (
            json!({"app": "jira", "auth_type": "basic", "secrets": {"email": " a@b.c", "api_token": "t"}}),
            "secrets.email",
            "'email' begins or ends with white space",
        ),
        // A file pasted where a token goes.
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": format!("xoxb-1-2-abc{}", "x".repeat(16_373))}}),
            "secrets.bot_token",
            "'bot_token' is 16385 characters long; at most 16384",
        ),
        // A user's token (it would post as that person) or an app-level one (it cannot post).
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "xoxp-1-2-abc"}}),
            "secrets.bot_token",
            "is a user token (xoxp-)",
        ),
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "xapp-1-abc"}}),
            "secrets.bot_token",
            "is an app-level token (xapp-)",
        ),
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "1-2-abc"}}),
            "secrets.bot_token",
            "is not a bot token",
        ),
        // Basic authentication cannot carry it.
        (
            json!({"app": "servicenow", "auth_type": "basic", "secrets": {"username": "ad:min", "password": "p"}}),
            "secrets.username",
            "must not hold ':'",
        ),
        // The account's name, not its address.
        (
            json!({"app": "jira", "auth_type": "basic", "secrets": {"email": "jdoe", "api_token": "t"}}),
            "secrets.email",
            "'email' must be the account's e-mail address",
        ),
        // The site's address pasted where its cloud id goes.
        (
            json!({"app": "jira", "auth_type": "oauth2_3lo", "secrets": {"client_id": "a", "client_secret": "b", "refresh_token": "r", "cloud_id": "https://acme.atlassian.net"}}),
            "secrets.cloud_id",
            "must be the site's cloud id, a UUID",
        ),
        (
            json!({"app": "jira", "auth_type": "basic", "secrets": {"email": "a@b.io", "api_token": "t"}, "domain": "https://acme.my.salesforce.com"}),
            "domain",
            "not where this app's instances live",
        ),
        (
            json!({"app": "slack", "auth_type": "bot_token", "secrets": {"bot_token": "xoxb-t"}, "domain": "https://127.0.0.2"}),
            "domain",
            "loopback, private",
        ),
    ];
    for (case, field, message) in cases {
        let mut body = json!({"name": "n", "domain": sandbox});
        for (k, v) in case.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, err) = env.call(Method::POST, "/v1/connections", Some(body)).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{err}"
        );
        assert!(!err.to_string().contains("xoxb-1-2-abc"), "{err}");
    }
    // An edit's new secret is held to the same: a token pasted with its line break.
    let slack = env
        .connection(
            "Slack",
            "slack",
            "bot_token",
            json!({"bot_token": "xoxb-1-2-abc"}),
        )
        .await;
    let path = format!("/v1/connections/{}", slack["id"].as_str().expect("id"));
    env.assert_refused(
        Method::PATCH,
        &path,
        Some(json!({"secrets": {"bot_token": "xoxb-1-2-abd\r\n"}})),
        (422, "validation_failed", Some("secrets.bot_token")),
    )
    .await;
    let (status, renamed) = env
        .call(Method::PATCH, &path, Some(json!({"name": "Slack (ops)"})))
        .await;
    assert_eq!(
        (status.as_u16(), &renamed["name"]),
        (200, &json!("Slack (ops)")),
        "{renamed}"
    );
    // A connection saved before a check existed (here a user token, sealed as an earlier
    // release saved it) is still renamed: only the secrets an edit gives are read for their
    // form — the saved ones cannot be read back to be sent again.
    let id: uuid::Uuid = slack["id"].as_str().expect("id").parse().expect("uuid");
    let keyring = env.settings().1.keyring().expect("keyring");
    let legacy = aic_core::credentials::SecretFields::new(
        [(
            "bot_token".to_string(),
            secrecy::SecretString::from("xoxp-legacy".to_string()),
        )]
        .into(),
    );
    let aad = aic_core::credentials::connection_aad(env.tenant, aic_proto::ConnectionId(id));
    let sealed = keyring.seal(&legacy, &aad);
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE connections SET secret_key_id = $2, secret_nonce = $3, secret_ciphertext = $4 \
             WHERE id = $1",
            &[&id, &sealed.key_id, &sealed.nonce, &sealed.ciphertext],
        )
        .await
        .expect("sealed as before");
    let (status, renamed) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Slack (legacy)"})),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{renamed}");
    env.assert_refused(
        Method::PATCH,
        &path,
        Some(json!({"secrets": {"bot_token": "xoxp-new"}})),
        (422, "validation_failed", Some("secrets.bot_token")),
    )
    .await;
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
