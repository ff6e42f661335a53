//! API tokens managed through the API by the tenant's admins: issued for a flow and shown once,
//! listed without the token, refused at once when revoked or expired, scoped to their role and
//! tenant, and never the tenant's last working admin token revoked.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;

/// Issues a token; answers its id and the token itself.
async fn issue(env: &TestEnv, name: &str, role: &str) -> (String, String) {
    let (status, issued) = env
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_string();
    (issued["id"].as_str().expect("id").to_string(), token)
}

#[tokio::test]
async fn a_flows_token_is_issued_once_and_used_for_its_role_only() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (status, issued) = env
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "onboarding flow", "role": "service"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(
        (issued["role"].as_str(), issued["status"].as_str()),
        (Some("service"), Some("active")),
        "{issued}"
    );
    assert_eq!(issued["created_by"], "initial admin", "{issued}");
    let id = issued["id"].as_str().expect("id");
    let token = issued["token"].as_str().expect("token");
    assert!(token.starts_with("aic_"), "{issued}");

    // A service token runs automations (here: reads an execution) and configures nothing.
    let (status, _) = env
        .call_as(token, Method::GET, &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(status, 404, "authenticated: an unknown execution");
    for (method, path) in [
        (Method::GET, "/v1/connections"),
        (Method::GET, "/v1/tokens"),
        (Method::POST, "/v1/tokens"),
    ] {
        let (status, err) = env
            .call_as(
                token,
                method,
                path,
                Some(json!({"name": "x", "role": "admin"})),
            )
            .await;
        assert_eq!(status, 403, "{path}: {err}");
    }
    let shown = env.listed_token(id).await;
    assert!(shown.get("token").is_none(), "shown once only: {shown}");
    let used = shown["last_used_at"].as_str().expect("used").to_string();
    let (list_status, list) = env.call(Method::GET, "/v1/tokens", None).await;
    assert_eq!(list_status, 200);
    assert!(!list.to_string().contains(token), "{list}");

    // A second use within the minute writes nothing.
    env.call_as(token, Method::GET, "/v1/apps", None).await;
    assert_eq!(env.listed_token(id).await["last_used_at"], used.as_str());
    env.stop().await;
}

/// The answer that shows a token (and every other answer of the API: configurations, results)
/// is never kept by a browser's or a proxy's cache; the console's pages keep their own rule.
#[tokio::test]
async fn no_cache_keeps_an_issued_token_or_any_answer() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let headers = |resp: &reqwest::Response| {
        let get = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        (get("cache-control"), get("x-content-type-options"))
    };
    let no_store = (Some("no-store".to_string()), Some("nosniff".to_string()));
    let issued = env
        .api_request(&env.admin_token, Method::POST, "/v1/tokens")
        .json(&json!({"name": "flow", "role": "service"}))
        .send()
        .await
        .expect("issued");
    assert_eq!(issued.status(), 201);
    assert_eq!(headers(&issued), no_store, "the answer holding the token");
    for (method, path) in [
        (Method::GET, "/v1/tokens"),
        (Method::GET, "/v1/connections/nowhere"),
        (Method::DELETE, "/v1/tokens"),
        (Method::GET, "/v1/me"),
    ] {
        let resp = env
            .api_request(&env.admin_token, method.clone(), path)
            .send()
            .await
            .expect("answers");
        assert_eq!(
            headers(&resp),
            no_store,
            "{method} {path}: {}",
            resp.status()
        );
    }
    let page = reqwest::get(format!("{}/console", env.api))
        .await
        .expect("console");
    assert_eq!(
        headers(&page),
        (Some("no-cache".to_string()), Some("nosniff".to_string()))
    );
    env.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (id, token) = issue(&env, "onboarding flow", "service").await;
    let (status, _) = env.call_as(&token, Method::GET, "/v1/apps", None).await;
    assert_eq!(status, 200);
    // HTTP's schemes are case-insensitive: a client writing `bearer` is served.
    let lower = reqwest::Client::new()
        .get(format!("{}/v1/apps", env.api))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(lower.status(), 200);
    let path = format!("/v1/tokens/{id}");
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, err) = env.call_as(&token, Method::GET, "/v1/apps", None).await;
    assert_eq!(status, 401, "revoked at once: {err}");
    assert_eq!(err["error"]["code"], "unauthenticated", "{err}");
    let refused = env
        .api_request(&token, Method::GET, "/v1/apps")
        .send()
        .await
        .expect("answers");
    let challenge = refused.headers().get("www-authenticate");
    assert_eq!(
        challenge.and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"aic\""),
        "a 401 says how to authenticate"
    );
    let shown = env.listed_token(&id).await;
    assert_eq!(
        (shown["status"].as_str(), shown["revoked_by"].as_str()),
        (Some("revoked"), Some("initial admin")),
        "{shown}"
    );
    assert!(shown["revoked_at"].is_string(), "{shown}");
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "revoking a revoked token changes nothing");
    let (_, revoked) = env
        .call(Method::GET, "/v1/tokens?status=revoked", None)
        .await;
    assert_eq!(revoked.as_array().map(Vec::len), Some(1), "{revoked}");
    env.stop().await;
}

#[tokio::test]
async fn an_expired_token_stops_working_by_itself() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let (status, issued) = env
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "contractor", "role": "viewer", "expires_at": tomorrow})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let (id, token) = (
        issued["id"].as_str().expect("id"),
        issued["token"].as_str().expect("token"),
    );
    let (status, _) = env
        .call_as(token, Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(status, 200);
    // A day passes.
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("expire");
    let (status, err) = env
        .call_as(token, Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(env.listed_token(id).await["status"], "expired");
    let (_, expired) = env
        .call(Method::GET, "/v1/tokens?status=expired&role=viewer", None)
        .await;
    assert_eq!(expired.as_array().map(Vec::len), Some(1), "{expired}");
    env.stop().await;
}

#[tokio::test]
async fn the_last_working_admin_token_is_never_revoked() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (_, list) = env.call(Method::GET, "/v1/tokens", None).await;
    let first = list[0]["id"]
        .as_str()
        .expect("the initial admin")
        .to_string();
    let err = env
        .assert_refused(
            Method::DELETE,
            &format!("/v1/tokens/{first}"),
            None,
            (409, "last_admin", None),
        )
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("'initial admin'"),
        "{err}"
    );
    // An expired admin token does not count as a working one.
    let (expired, _) = issue(&env, "old admin", "admin").await;
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE api_tokens SET expires_at = now() WHERE id = $1::text::uuid",
            &[&expired],
        )
        .await
        .expect("expire");
    env.assert_refused(
        Method::DELETE,
        &format!("/v1/tokens/{first}"),
        None,
        (409, "last_admin", None),
    )
    .await;

    let (second, second_token) = issue(&env, "second admin", "admin").await;
    let (status, _) = env
        .call(Method::DELETE, &format!("/v1/tokens/{first}"), None)
        .await;
    assert_eq!(status, 204, "another admin remains");
    let (status, _) = env.call(Method::GET, "/v1/tokens", None).await;
    assert_eq!(status, 401, "the first admin token is revoked");
    let (status, err) = env
        .call_as(
            &second_token,
            Method::DELETE,
            &format!("/v1/tokens/{second}"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("last_admin")),
        "{err}"
    );
    env.stop().await;
}

#[tokio::test]
async fn tokens_are_the_admins_own_and_the_tenants_own() {
    let env = TestEnv::start_with(Options::api_only()).await;
    for role in [Role::Editor, Role::Viewer, Role::Service] {
        let token = env.token(role).await;
        let (status, err) = env
            .call_as(
                &token,
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": "mine", "role": "admin"})),
            )
            .await;
        assert_eq!(status, 403, "{role}: {err}");
    }
    let (id, _) = issue(&env, "bot", "service").await;
    let other = aic_control_plane::tenants::create_tenant(&env.pool, "globex")
        .await
        .expect("tenant");
    let path = format!("/v1/tokens/{id}");
    let (status, _) = env.call_as(&other.token, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "another tenant's token is not found");
    let (_, theirs) = env
        .call_as(&other.token, Method::GET, "/v1/tokens", None)
        .await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(env.listed_token(&id).await["status"], "active");
    for garbage in ["nope", "1234"] {
        let (status, _) = env
            .call(Method::DELETE, &format!("/v1/tokens/{garbage}"), None)
            .await;
        assert_eq!(status, 404);
    }
    env.stop().await;
}

#[tokio::test]
async fn a_mistaken_token_request_names_its_field() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    for (body, field) in [
        (json!({"name": "x", "role": "owner"}), "role"),
        (json!({"name": "  ", "role": "viewer"}), "name"),
        (json!({"name": "x".repeat(201), "role": "viewer"}), "name"),
        (
            json!({"name": "x", "role": "viewer", "expires_at": yesterday}),
            "expires_at",
        ),
    ] {
        env.assert_refused(
            Method::POST,
            "/v1/tokens",
            Some(body),
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    for (body, field, needle) in [
        (
            json!({"name": "x", "role": "viewer", "expires_at": "soon"}),
            "expires_at",
            "'soon' is not an RFC 3339 time",
        ),
        // Without its offset: which time zone's midnight?
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2099-01-01T00:00:00"}),
            "expires_at",
            "not an RFC 3339 time with its offset",
        ),
        (
            json!({"name": "x", "role": "viewer", "scope": "all"}),
            "scope",
            "scope",
        ),
    ] {
        let err = env
            .assert_refused(
                Method::POST,
                "/v1/tokens",
                Some(body),
                (422, "invalid_body", Some(field)),
            )
            .await;
        assert!(err.to_string().contains(needle), "{err}");
    }
    for query in ["?status=gone", "?role=owner", "?mine=1"] {
        let (status, err) = env
            .call(Method::GET, &format!("/v1/tokens{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {err}");
    }
    env.stop().await;
}

#[tokio::test]
async fn a_token_reads_who_it_is() {
    let env = TestEnv::start_with(Options::api_only()).await;
    for role in [Role::Admin, Role::Editor, Role::Viewer, Role::Service] {
        let token = env.token(role).await;
        let (status, me) = env.call_as(&token, Method::GET, "/v1/me", None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (me["token"]["role"].as_str(), me["tenant_name"].as_str()),
            (Some(role.as_str()), Some("acme")),
            "{me}"
        );
        assert!(
            me["token"].get("token").is_none() && !me.to_string().contains(&token),
            "{me}"
        );
    }
    let (status, me) = env.call(Method::GET, "/v1/me", None).await;
    assert_eq!(
        (status.as_u16(), me["token"]["name"].as_str()),
        (200, Some("initial admin"))
    );
    env.stop().await;
}
