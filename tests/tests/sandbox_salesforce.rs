//! The sandbox speaks Salesforce's wire format: checked directly, without our connector, so a
//! connector bug cannot hide a sandbox bug.

use aic_tests::sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

async fn sandbox() -> (Sandbox, reqwest::Client) {
    let s = Sandbox::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("starts");
    s.state.salesforce.add_client("app", "secret");
    (s, reqwest::Client::new())
}

async fn token(s: &Sandbox, http: &reqwest::Client, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = http
        .post(format!("{}/services/oauth2/token", s.url()))
        .form(form)
        .send()
        .await
        .expect("answers");
    (r.status(), r.json().await.expect("json"))
}

#[tokio::test]
async fn the_token_endpoint_answers_like_salesforce() {
    let (s, http) = sandbox().await;
    let (status, ok) = token(
        &s,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["instance_url"], s.url());
    assert!(
        ok["issued_at"].is_string() && ok.get("expires_in").is_none(),
        "Salesforce sends no expires_in: {ok}"
    );

    let cases = [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nope"),
                ("client_secret", "x"),
            ],
            "invalid_client_id",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
        ),
        (vec![("grant_type", "magic")], "unsupported_grant_type"),
    ];
    for (form, code) in cases {
        let (status, err) = token(&s, &http, &form).await;
        assert_eq!(
            (status.as_u16(), err["error"].as_str()),
            (400, Some(code)),
            "{err}"
        );
        assert!(err["error_description"].is_string());
    }
    s.state.salesforce.remove_run_as_user("app");
    let (status, err) = token(
        &s,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn data_calls_carry_the_limit_header_and_refuse_expired_sessions() {
    let (s, http) = sandbox().await;
    let (_, t) = token(
        &s,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    let bearer = t["access_token"].as_str().expect("token").to_string();
    let create = |body: Value| {
        http.post(format!("{}/services/data/v62.0/sobjects/Lead/", s.url()))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };

    let r = create(json!({"LastName": "A", "Company": "B"}))
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/100000");
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        (body["success"].as_bool(), body["errors"].clone()),
        (Some(true), json!([]))
    );

    let r = create(json!({"LastName": "A"})).await.expect("answers");
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=2/100000");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!([{"message": "Required fields are missing: [Company]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Company"]}])
    );

    s.state.salesforce.expire_tokens();
    let r = create(json!({"LastName": "A", "Company": "B"}))
        .await
        .expect("answers");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}

#[tokio::test]
async fn the_daily_quota_is_a_403_without_retry_after() {
    let (s, http) = sandbox().await;
    s.state.salesforce.daily_limit.store(1, Ordering::SeqCst);
    let (_, t) = token(
        &s,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    let url = format!("{}/services/data/v62.0/sobjects/Lead/", s.url());
    let first = http
        .post(&url)
        .bearer_auth(t["access_token"].as_str().expect("t"))
        .json(&json!({"LastName": "A", "Company": "B"}))
        .send()
        .await
        .expect("ok");
    assert_eq!(first.status(), 201);
    let over = http
        .post(&url)
        .bearer_auth(t["access_token"].as_str().expect("t"))
        .json(&json!({"LastName": "A", "Company": "B"}))
        .send()
        .await
        .expect("ok");
    assert_eq!(over.status(), 403);
    assert!(over.headers().get("retry-after").is_none());
    assert_eq!(
        over.json::<Value>().await.expect("json")[0]["errorCode"],
        "REQUEST_LIMIT_EXCEEDED"
    );
}

#[tokio::test]
async fn malformed_bodies_and_unknown_objects_get_salesforces_codes() {
    let (s, http) = sandbox().await;
    let (_, t) = token(
        &s,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    let bearer = t["access_token"].as_str().expect("token");
    let r = http
        .post(format!("{}/services/data/v62.0/sobjects/Lead/", s.url()))
        .bearer_auth(bearer)
        .body("{oops")
        .send()
        .await
        .expect("ok");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")[0]["errorCode"],
        "JSON_PARSER_ERROR"
    );
    let r = http
        .post(format!(
            "{}/services/data/v62.0/sobjects/Spaceship/",
            s.url()
        ))
        .bearer_auth(bearer)
        .json(&json!({}))
        .send()
        .await
        .expect("ok");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")[0]["errorCode"],
        "INVALID_TYPE"
    );
    assert_eq!(
        s.requests().len(),
        3,
        "every request recorded, the token call included"
    );
}

#[tokio::test]
async fn a_sandbox_on_its_own_thread_answers_while_the_callers_runtime_is_blocked() {
    use std::io::{Read, Write};
    let s = Sandbox::start_on_own_thread("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("starts");
    // This test's runtime has one thread, and a blocking call holds it: only the sandbox's own
    // runtime can answer.
    let mut tcp = std::net::TcpStream::connect(s.addr).expect("connects");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let form = "grant_type=client_credentials";
    let call = format!(
        "POST /services/oauth2/token HTTP/1.1\r\nhost: sandbox\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    );
    tcp.write_all(call.as_bytes()).expect("writes");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)
        .expect("the sandbox answers from its own thread");
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "an unknown client is refused as Salesforce does: {answer}"
    );
    assert!(answer.contains("invalid_client_id"), "{answer}");
    assert_eq!(s.requests().len(), 1, "the call was recorded");
}
