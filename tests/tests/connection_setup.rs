//! Setting up a connection: each mistake — a missing or unknown field, a secret of the wrong
//! form, a domain not the app's — is refused naming the field, never repeating a secret.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

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
