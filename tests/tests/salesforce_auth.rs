//! Salesforce's auth flows end to end: the OAuth refresh token (and what a revoked one does to
//! the connection), the JWT bearer assertion and the username-password grant, each against the
//! sandbox org as Salesforce answers them.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_revoked_salesforce_refresh_token_marks_the_connection_and_later_runs_fail_fast() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    org.add_client("3MVG9refresh", "refresh-client-secret");
    org.add_refresh_token("5Aep861-refresh-token");
    let conn = env
        .connection("SF refresh", "salesforce", "oauth2_refresh_token", json!({"client_id": "3MVG9refresh", "client_secret": "refresh-client-secret", "refresh_token": "5Aep861-refresh-token"}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "A", "Company": "B"}))
            .await["status"],
        "succeeded"
    );

    org.revoke_refresh_token("5Aep861-refresh-token");
    org.expire_tokens();
    let done = env
        .run(&lead, json!({"LastName": "C", "Company": "D"}))
        .await;
    assert_eq!(
        done["result"]["error"]["code"], "connection_needs_reauthorization",
        "{done}"
    );
    assert_eq!(done["result"]["error"]["vendor"]["code"], "invalid_grant");
    let (_, saved) = env
        .call(Method::GET, &format!("/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(saved["status"], "needs_reauthorization");

    let tokens_before = org.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    let creates_before = env.sandbox.requests_to("/sobjects/").len();
    let fast = env
        .run(&lead, json!({"LastName": "E", "Company": "F"}))
        .await;
    assert_eq!(
        fast["result"]["error"]["code"],
        "connection_needs_reauthorization"
    );
    assert_settled_without_the_org(&env, &fast, tokens_before, creates_before);
    env.stop().await;
}

/// The execution ended with no call counted, no token asked of the org since `tokens` and no
/// create since `creates`.
fn assert_settled_without_the_org(
    env: &TestEnv,
    done: &serde_json::Value,
    tokens: u64,
    creates: usize,
) {
    assert_eq!(done["result"]["attempts"], 0, "{done}");
    assert_eq!(
        env.sandbox
            .state
            .salesforce
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        tokens,
        "no token request"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        creates,
        "no vendor call"
    );
}

#[tokio::test]
async fn salesforce_jwt_bearer_signs_an_assertion_the_org_verifies() {
    let env = TestEnv::start().await;
    let private = include_str!("../fixtures/test-jwt-key.pem");
    let public = include_str!("../fixtures/test-jwt-key.pub.pem");
    env.sandbox
        .state
        .salesforce
        .add_jwt_app("3MVG9jwt", public, "integration@acme.example");
    let conn = env
        .connection("SF JWT", "salesforce", "oauth2_jwt_bearer", json!({"client_id": "3MVG9jwt", "username": "integration@acme.example", "private_key": private}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let test = env.test_connection(conn_id).await;
    assert_eq!(test["ok"], true, "{test}");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "Jwt", "Company": "Signed"}))
            .await["status"],
        "succeeded"
    );

    let token_call = env
        .sandbox
        .requests_to("/services/oauth2/token")
        .pop()
        .expect("token call");
    assert!(
        token_call
            .body
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{}",
        token_call.body
    );
    assert!(
        !token_call.body.contains("PRIVATE"),
        "the key itself never leaves"
    );

    // A user the app is not approved for: invalid_grant, the connection needs an admin.
    let other = env
        .connection("SF JWT other", "salesforce", "oauth2_jwt_bearer", json!({"client_id": "3MVG9jwt", "username": "someone@acme.example", "private_key": private}))
        .await;
    let test = env.test_connection(other["id"].as_str().expect("id")).await;
    assert_eq!(
        (test["ok"].as_bool(), test["vendor_code"].as_str()),
        (Some(false), Some("invalid_grant")),
        "{test}"
    );
    assert!(
        test["message"]
            .as_str()
            .unwrap_or("")
            .contains("user hasn't approved this consumer"),
        "{test}"
    );
    env.stop().await;
}

#[tokio::test]
async fn salesforce_username_password_grant_works_and_a_wrong_password_is_plain() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    org.add_client("3MVG9pw", "pw-client-secret");
    org.add_user("api@acme.example", "Passw0rdSECURITYTOKEN");
    let good = env
        .connection("SF password", "salesforce", "username_password", json!({"client_id": "3MVG9pw", "client_secret": "pw-client-secret", "username": "api@acme.example", "password": "Passw0rdSECURITYTOKEN"}))
        .await;
    let lead = env
        .published_automation(
            "salesforce.create_lead",
            good["id"].as_str().expect("id"),
            "Lead",
            None,
        )
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "P", "Company": "W"}))
            .await["status"],
        "succeeded"
    );
    let bad = env
        .connection("SF bad password", "salesforce", "username_password", json!({"client_id": "3MVG9pw", "client_secret": "pw-client-secret", "username": "api@acme.example", "password": "wrong"}))
        .await;
    let test = env.test_connection(bad["id"].as_str().expect("id")).await;
    assert_eq!(test["vendor_code"], "invalid_grant");
    assert!(
        test["message"]
            .as_str()
            .unwrap_or("")
            .contains("authentication failure"),
        "{test}"
    );
    env.stop().await;
}

/// A connection's secrets are opened only to fetch a token: an execution served from the
/// token cache never decrypts them (so a sealed row damaged after the token was fetched goes
/// unnoticed until the next fetch), and one that must fetch and cannot open them fails with
/// a clear error, without a vendor call and without the secret in the result.
#[tokio::test]
async fn secrets_are_opened_only_to_fetch_a_token_and_a_sealed_row_that_does_not_open_fails_clearly()
 {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    let conn = env
        .salesforce_connection("SF sealed", "sealed-secret-1", "sealed-secret-1")
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    let first = env
        .run(&lead, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let tokens = org.token_requests.load(std::sync::atomic::Ordering::SeqCst);

    // Damage the sealed secrets (the authentication tag no longer matches), same version.
    let db = env.pool.get().await.expect("postgres");
    let damage = "UPDATE connections SET secret_ciphertext = \
         set_byte(secret_ciphertext, 0, get_byte(secret_ciphertext, 0) # 1) WHERE id = $1::text::uuid";
    db.execute(damage, &[&conn_id]).await.expect("damage");
    let cached = env
        .run(&lead, json!({"LastName": "C", "Company": "D"}))
        .await;
    assert_eq!(
        cached["status"], "succeeded",
        "served from the token cache: {cached}"
    );
    assert_eq!(
        org.token_requests.load(std::sync::atomic::Ordering::SeqCst),
        tokens,
        "no token request"
    );

    // A new version of the secrets (as an edit makes) needs a token of its own: the worker
    // must open them now, and cannot.
    db.execute(
        "UPDATE connections SET secret_version = secret_version + 1 WHERE id = $1::text::uuid",
        &[&conn_id],
    )
    .await
    .expect("new version");
    let creates = env.sandbox.requests_to("/sobjects/").len();
    let failed = env
        .run(&lead, json!({"LastName": "E", "Company": "F"}))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["result"]["error"]["code"], "internal", "{failed}");
    assert_eq!(
        failed["result"]["error"]["message"],
        "the connection's credentials could not be opened"
    );
    assert_settled_without_the_org(&env, &failed, tokens, creates);
    assert!(!failed.to_string().contains("sealed-secret-1"), "{failed}");
    env.stop().await;
}
