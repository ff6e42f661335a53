//! The catalogue through the API: business domains, app tiles and automation templates,
//! filtered and searched without case or accents, a mistaken filter named; and the connection
//! form's side panel — what each app's domain is, how to set each auth type up, what each field
//! is.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn the_catalogue_filters_by_domain_and_searches_without_case_or_accents() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (_, domains) = env.call(Method::GET, "/v1/domains", None).await;
    assert!(
        domains.as_array().map(Vec::len).unwrap_or(0) >= 20,
        "{domains}"
    );
    let itsm = domains
        .as_array()
        .expect("array")
        .iter()
        .find(|d| d["id"] == "it_service_management")
        .expect("ITSM");
    assert_eq!(itsm["apps"], 2);

    let (_, all) = env.call(Method::GET, "/v1/apps", None).await;
    assert_eq!(ids(&all), ["salesforce", "jira", "servicenow", "slack"]);
    let sf = &all[0];
    assert_eq!(sf["automations"], 4);
    let auth: Vec<_> = sf["auth_types"]
        .as_array()
        .expect("auth")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        auth,
        [
            "oauth2_client_credentials",
            "oauth2_jwt_bearer",
            "oauth2_refresh_token",
            "username_password"
        ]
    );
    let (_, found) = env.call(Method::GET, "/v1/apps?q=TICK%C3%89T", None).await;
    assert_eq!(ids(&found), ["jira", "servicenow"]);
    let (_, found) = env
        .call(Method::GET, "/v1/apps?domain=communications", None)
        .await;
    assert_eq!(ids(&found), ["slack"]);
    let (_, found) = env
        .call(Method::GET, "/v1/apps?domain=sales&q=crm", None)
        .await;
    assert_eq!(ids(&found), ["salesforce"]);
    let (status, err) = env
        .call(Method::GET, "/v1/apps?domain=astrology", None)
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("domain"))
    );

    env.stop().await;
}

#[tokio::test]
async fn templates_are_listed_by_app_and_searched_and_a_mistaken_filter_is_named() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (_, templates) = env
        .call(Method::GET, "/v1/apps/salesforce/templates", None)
        .await;
    assert_eq!(
        ids(&templates),
        [
            "salesforce.create_lead",
            "salesforce.create_opportunity",
            "salesforce.create_contact",
            "salesforce.create_quote"
        ]
    );
    let (_, found) = env
        .call(Method::GET, "/v1/templates?q=incident", None)
        .await;
    assert_eq!(ids(&found), ["servicenow.create_incident"]);
    let (_, found) = env.call(Method::GET, "/v1/templates?app=jira", None).await;
    assert_eq!(ids(&found), ["jira.create_issue", "jira.add_comment"]);
    // A mistaken filter is named, not ignored.
    env.assert_refused(
        Method::GET,
        "/v1/templates?app=myspace",
        None,
        (422, "validation_failed", Some("app")),
    )
    .await;
    let err = env
        .assert_refused(
            Method::GET,
            "/v1/apps?domian=sales",
            None,
            (422, "invalid_query", Some("domian")),
        )
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("domian"),
        "{err}"
    );
    env.stop().await;
}

#[tokio::test]
async fn each_auth_type_says_how_to_set_it_up_and_what_each_field_is() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (_, all) = env.call(Method::GET, "/v1/apps", None).await;
    let sf = &all[0];
    // The connection form's side panel: what the domain is, how to set each auth type up, and
    // what each field is, required ones first.
    assert!(
        sf["domain_help"]
            .as_str()
            .expect("help")
            .contains("My Domain"),
        "{sf}"
    );
    let jwt = &sf["auth_types"][1];
    assert!(
        jwt["instructions"]
            .as_str()
            .expect("instructions")
            .contains("certificate"),
        "{jwt}"
    );
    let fields: Vec<(&str, bool)> = jwt["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            assert!(
                !f["description"].as_str().expect("description").is_empty(),
                "{f}"
            );
            (f["name"].as_str().expect("name"), f["required"] == true)
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("client_id", true),
            ("username", true),
            ("private_key", true),
            ("audience", false)
        ]
    );
    for app in all.as_array().expect("apps") {
        assert!(
            !app["domain_help"].as_str().unwrap_or("").is_empty(),
            "{app}"
        );
        for auth in app["auth_types"].as_array().expect("auth types") {
            assert!(
                !auth["instructions"].as_str().unwrap_or("").is_empty(),
                "{auth}"
            );
        }
    }
    env.stop().await;
}
