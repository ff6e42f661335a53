use super::*;

#[test]
fn the_authorization_value_is_built_once_per_token_and_marked_sensitive() {
    let base = Url::parse("https://acme.atlassian.net").expect("url");
    let basic = AccessToken::new(
        Credential::Basic {
            user: "me@acme.example".into(),
            secret: SecretString::from("api-token".to_string()),
        },
        base.clone(),
    );
    let first = basic.authorization().expect("value");
    assert_eq!(first, "Basic bWVAYWNtZS5leGFtcGxlOmFwaS10b2tlbg==");
    assert!(first.is_sensitive());
    assert!(
        basic.authorization.get().is_some(),
        "kept for the next calls"
    );
    assert_eq!(basic.authorization().expect("again"), first);
    let bearer = AccessToken::new(
        Credential::Bearer(SecretString::from("t0k".to_string())),
        base.clone(),
    );
    assert_eq!(bearer.authorization().expect("value"), "Bearer t0k");
    let broken = AccessToken::new(
        Credential::Bearer(SecretString::from("a\nb".to_string())),
        base,
    );
    let refused = broken.authorization().expect_err("no header can carry it");
    assert!(!refused.message.contains("a\nb"), "{}", refused.message);
    assert!(broken.authorization.get().is_none());
}

#[test]
fn output_fields_are_picked_by_pointer_and_absent_ones_left_out() {
    let body = serde_json::json!({"id": "00Q1", "success": true, "errors": [],
        "record": {"key": "ACME-7", "fields": {"n": [10, {"deep": null}]}}});
    let output: BTreeMap<String, String> = [
        ("id", "/id"),
        ("key", "/record/key"),
        ("deep", "/record/fields/n/1/deep"),
        ("second", "/record/fields/n/0"),
        ("missing", "/record/nope"),
        ("whole", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mapped = map_output(&body, &output);
    assert_eq!(
        Value::Object(mapped),
        serde_json::json!({"id": "00Q1", "key": "ACME-7", "deep": null, "second": 10,
            "whole": body})
    );
}

/// A token endpoint that says its tokens live `u64::MAX` seconds (a broken one, or one in a
/// test harness) gets a token that is fetched again within a day, rather than a clock
/// overflow's panic in the middle of a vendor call.
#[tokio::test]
async fn a_token_said_to_live_forever_is_kept_a_day_at_most() {
    let answer = r#"{"access_token":"at","refresh_token":"rt","token_type":"Bearer","expires_in":18446744073709551615}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
        answer.len()
    );
    let secrets = |pairs: &[(&str, &str)]| {
        SecretFields::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        )
    };
    let http = VendorHttp::new(
        HttpSettings::single(Duration::from_secs(10)),
        &EgressPolicy::new(vec!["localhost".into()]),
    )
    .expect("client");
    let day_away = || Instant::now() + LONGEST_TOKEN_LIFE;

    let port = transport::tests::answering(head.clone(), 0).await;
    let policy = EgressPolicy::new(vec!["localhost".into()]);
    let instance = Url::parse(&format!("http://localhost:{port}")).expect("url");
    let fields = secrets(&[
        ("client_id", "c"),
        ("client_secret", "s"),
        ("username", "u"),
        ("password", "p"),
    ]);
    let target = ConnectionTarget {
        vendor: Vendor::ServiceNow,
        instance: &instance,
        auth_type: "oauth2_password",
        secrets: &fields,
    };
    let token = servicenow::authenticate(&http, &policy, &target)
        .await
        .expect("ServiceNow's token");
    assert!(token.expires_at.expect("an expiry") <= day_away());

    let port = transport::tests::answering(head, 0).await;
    let policy = EgressPolicy::new(vec!["localhost".into()]).with_overrides(&[format!(
        "{}=http://localhost:{port}/oauth/token",
        jira::TOKEN_URL
    )]);
    let site = Url::parse("https://acme.atlassian.net").expect("url");
    let fields = secrets(&[
        ("client_id", "c"),
        ("client_secret", "s"),
        ("refresh_token", "r"),
        ("cloud_id", "11111111-2222-3333-4444-555555555555"),
    ]);
    let target = ConnectionTarget {
        vendor: Vendor::Jira,
        instance: &site,
        auth_type: "oauth2_3lo",
        secrets: &fields,
    };
    let token = jira::authenticate(&http, &policy, &target)
        .await
        .expect("Atlassian's token");
    assert!(token.expires_at.expect("an expiry") <= day_away());
    assert!(token.is_fresh());
}
