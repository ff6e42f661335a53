use super::*;

fn sf() -> Vec<String> {
    vec!["*.my.salesforce.com".into()]
}

#[test]
fn a_bare_host_becomes_https_and_must_match_the_apps_patterns() {
    let p = EgressPolicy::default();
    assert_eq!(
        p.app_instance_url("acme.my.salesforce.com", &sf())
            .expect("valid")
            .as_str(),
        "https://acme.my.salesforce.com/"
    );
    assert!(matches!(
        p.app_instance_url("https://evil.example.com", &sf()),
        Err(EgressError::HostNotAllowed { .. })
    ));
    assert!(matches!(
        p.app_instance_url("https://my.salesforce.com.evil.io", &sf()),
        Err(EgressError::HostNotAllowed { .. })
    ));
    assert!(matches!(
        p.app_instance_url("https://my.salesforce.com", &sf()),
        Err(EgressError::HostNotAllowed { .. })
    ));
}

#[test]
fn plain_http_and_private_literals_are_refused_unless_the_operator_allows_the_host() {
    let p = EgressPolicy::default();
    assert!(matches!(
        p.instance_url("http://acme.my.salesforce.com"),
        Err(EgressError::NotHttps(_))
    ));
    for bad in [
        "https://127.0.0.1",
        "https://10.1.2.3",
        "https://169.254.169.254",
        "https://[::1]",
        "https://[fd00:ec2::254]",
        "https://100.64.0.1",
    ] {
        assert!(
            matches!(p.instance_url(bad), Err(EgressError::PrivateAddress(_))),
            "{bad}"
        );
    }
    let p = EgressPolicy::new(vec!["127.0.0.1".into()]);
    assert!(p.app_instance_url("http://127.0.0.1:8080", &sf()).is_ok());
    assert!(p.instance_url("http://10.0.0.1").is_err());
}

#[test]
fn forbidden_addresses_cover_mapped_v6_and_metadata() {
    assert!(is_forbidden(IpAddr::V4(METADATA_V4)));
    assert!(is_forbidden(IpAddr::V6(METADATA_V6)));
    assert!(is_forbidden("::ffff:10.0.0.1".parse().expect("ip")));
    assert!(!is_forbidden("13.110.0.1".parse().expect("ip")));
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_setup() {
    let p = EgressPolicy::default();
    let url = Url::parse("https://localhost").expect("url");
    assert_eq!(
        p.check_resolution(&url).await,
        Err(EgressError::PrivateAddress("localhost".into()))
    );
}

#[test]
fn fixed_endpoints_follow_the_operators_overrides() {
    let p = EgressPolicy::new(vec!["127.0.0.1".into()])
        .with_overrides(&["https://auth.atlassian.com=http://127.0.0.1:9".into()]);
    assert_eq!(
        p.endpoint("https://auth.atlassian.com/oauth/token")
            .expect("ok")
            .as_str(),
        "http://127.0.0.1:9/oauth/token"
    );
    assert_eq!(
        p.endpoint("https://api.atlassian.com/ex/jira/x")
            .expect("ok")
            .as_str(),
        "https://api.atlassian.com/ex/jira/x"
    );
}

#[test]
fn allowed_hosts_match_by_name_and_by_name_with_port() {
    let p = EgressPolicy::new(vec![
        "Sandbox.Local".into(),
        "127.0.0.1:8080".into(),
        "::1:9000".into(),
    ]);
    let allowed = |u: &str| p.allows(&Url::parse(u).expect("url"));
    assert!(allowed("http://sandbox.local:1234/x"));
    assert!(allowed("http://127.0.0.1:8080/x"));
    assert!(allowed("http://[::1]:9000/x"));
    for refused in [
        "http://127.0.0.1:80/x",
        "http://127.0.0.1:808/x",
        "http://127.0.0.1/x",
        "http://127.0.0.2:8080/x",
        "http://sandbox.local.evil.io/x",
        "http://[::1]:900/x",
    ] {
        assert!(!allowed(refused), "{refused}");
    }
    let padded = EgressPolicy::new(vec!["127.0.0.1:08080".into(), "10.0.0.1:+80".into()]);
    assert!(!padded.allows(&Url::parse("http://127.0.0.1:8080").expect("url")));
    assert!(!padded.allows(&Url::parse("https://10.0.0.1:80").expect("url")));
}

#[test]
fn a_remembered_instance_answers_only_for_the_patterns_it_was_checked_against() {
    let p = EgressPolicy::default();
    let jira = vec!["*.atlassian.net".to_string()];
    for _ in 0..2 {
        assert_eq!(
            p.app_instance_url(" acme.my.salesforce.com", &sf())
                .expect("valid")
                .as_str(),
            "https://acme.my.salesforce.com/"
        );
        assert!(matches!(
            p.app_instance_url(" acme.my.salesforce.com", &jira),
            Err(EgressError::HostNotAllowed { .. })
        ));
        assert!(matches!(
            p.app_instance_url("http://acme.my.salesforce.com", &sf()),
            Err(EgressError::NotHttps(_))
        ));
    }
    let kept = p.instances.0.lock().expect("lock").len();
    assert_eq!(kept, 1, "only the accepted domain is kept");
    for i in 0..INSTANCE_URLS_KEPT + 10 {
        let domain = format!("t{i}.my.salesforce.com");
        assert!(p.app_instance_url(&domain, &sf()).is_ok());
    }
    assert!(p.instances.0.lock().expect("lock").len() <= INSTANCE_URLS_KEPT);
}

#[test]
fn credentials_in_the_url_are_refused_and_never_repeated() {
    let p = EgressPolicy::default();
    for raw in [
        "https://adm1n:pw-s3cret@acme.my.salesforce.com",
        "https://adm1n:pw-s3cret@acme.my salesforce.com/x@y",
        "adm1n:pw-s3cret@acme.my.salesforce.com",
    ] {
        let refused = p.app_instance_url(raw, &sf()).expect_err(raw).to_string();
        assert!(!refused.contains("s3cret"), "{refused}");
        assert!(!refused.contains("adm1n"), "{refused}");
    }
    assert!(matches!(
        p.instance_url("https://user:pw@acme.my.salesforce.com"),
        Err(EgressError::NotABase(_))
    ));
}

#[test]
fn a_vendors_host_is_its_address_alone_an_allowed_one_may_have_a_path() {
    let p = EgressPolicy::new(vec!["gateway.corp.example".into()]);
    let copied = "https://acme.my.salesforce.com/lightning/page/home";
    assert_eq!(
        p.app_instance_url(copied, &sf()),
        Err(EgressError::NotABase(
            "a path ('/lightning/page/home')".into()
        ))
    );
    for fine in [
        "https://acme.my.salesforce.com/",
        "acme.my.salesforce.com",
        "https://acme.my.salesforce.com:443",
    ] {
        assert!(p.app_instance_url(fine, &sf()).is_ok(), "{fine}");
    }
    assert!(matches!(
        p.app_instance_url("https://acme.my.salesforce.com/?x=1", &sf()),
        Err(EgressError::NotABase(_))
    ));
    let routed = p
        .app_instance_url("https://gateway.corp.example/salesforce", &sf())
        .expect("an allowed host keeps its path");
    assert_eq!(routed.path(), "/salesforce");
}
