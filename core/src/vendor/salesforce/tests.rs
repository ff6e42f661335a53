use super::*;

#[test]
fn a_request_timeout_is_retried() {
    let f = sf(408, "");
    assert_eq!(f.class, RetryClass::Retryable);
    assert_eq!(
        f.vendor.map(|v| v.code),
        Some("REQUEST_TIMEOUT".to_string())
    );
}

fn sf(status: u16, body: &str) -> VendorFailure {
    classify(
        StatusCode::from_u16(status).expect("valid status"),
        body.as_bytes(),
    )
}

#[test]
fn a_missing_required_field_is_permanent_and_names_the_field() {
    let f = sf(
        400,
        r#"[{"message":"Required fields are missing: [Company]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Company"]}]"#,
    );
    assert_eq!(f.class, RetryClass::Permanent);
    let v = f.vendor.expect("vendor details");
    assert_eq!(
        (v.code.as_str(), v.fields.as_slice()),
        ("REQUIRED_FIELD_MISSING", &["Company".to_string()][..])
    );
    assert!(f.message.contains("Required fields are missing: [Company]"));
}

#[test]
fn an_expired_session_asks_for_a_refresh() {
    let f = sf(
        401,
        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
    );
    assert_eq!(f.class, RetryClass::RefreshAuth);
}

#[test]
fn transient_codes_retry_and_the_daily_quota_does_not() {
    assert_eq!(
        sf(
            503,
            r#"[{"message":"down","errorCode":"SERVER_UNAVAILABLE"}]"#
        )
        .class,
        RetryClass::Retryable
    );
    assert_eq!(
        sf(400, r#"[{"message":"x","errorCode":"UNABLE_TO_LOCK_ROW"}]"#).class,
        RetryClass::Retryable
    );
    assert_eq!(sf(403, r#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#).class, RetryClass::Retryable);
    assert_eq!(
        sf(
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#
        )
        .class,
        RetryClass::Permanent
    );
}

#[test]
fn oauth_refusals_carry_the_vendor_code() {
    let f = classify_oauth(
        StatusCode::BAD_REQUEST,
        br#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        false,
    );
    assert_eq!(f.code, ExecutionErrorCode::VendorAuthFailed);
    assert_eq!(f.vendor.expect("details").code, "invalid_client");
    assert!(
        f.message
            .contains("invalid_client (invalid client credentials)")
    );
}

#[test]
fn a_domain_without_a_token_endpoint_is_said_to_be_the_wrong_domain() {
    let f = classify_oauth(
        StatusCode::NOT_FOUND,
        b"<html><body>Page not found</body></html>",
        false,
    );
    assert_eq!(f.class, RetryClass::Permanent);
    assert_eq!(f.vendor.expect("details").code, "http_404");
    assert!(
        f.message
            .contains("no token endpoint at this connection's domain")
            && !f.message.contains("refused the connection's credentials"),
        "{}",
        f.message
    );
}

#[test]
fn a_dead_refresh_token_needs_reauthorisation_but_a_client_credentials_refusal_does_not() {
    let body = br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#;
    assert_eq!(
        classify_oauth(StatusCode::BAD_REQUEST, body, true).code,
        ExecutionErrorCode::ConnectionNeedsReauthorization
    );
    assert_eq!(
        classify_oauth(StatusCode::BAD_REQUEST, body, false).code,
        ExecutionErrorCode::VendorAuthFailed
    );
}

#[test]
fn a_malformed_private_key_is_named() {
    assert!(
        check_private_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----").is_err()
    );
    let e = jwt_assertion("id", "user", "garbage", DEFAULT_AUDIENCE).unwrap_err();
    assert!(e.message.contains("'private_key'"), "{}", e.message);
}

#[test]
fn limit_info_is_read_with_or_without_bursts() {
    assert_eq!(
        parse_limit_info("api-usage=10018/100000"),
        Some((10018, 100000))
    );
    assert_eq!(
        parse_limit_info("api-usage=5/15000; api-bursts=1/750"),
        Some((5, 15000))
    );
    assert_eq!(parse_limit_info("garbage"), None);
}
