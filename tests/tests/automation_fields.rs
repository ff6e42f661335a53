//! The parameter table's field picker: the fields an automation's object can be given, read
//! from the vendor through the draft's connection — Salesforce's describe, ServiceNow's
//! dictionary with the columns a table inherits — or from the catalogue where the vendor has
//! no such description; each field names the parameter mapped to it, and the required fields
//! none is are listed.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

/// `GET /v1/automations/{id}/fields{query}`, checked to succeed.
async fn fields(env: &TestEnv, automation: &str, query: &str) -> Value {
    let path = format!("/v1/automations/{automation}/fields{query}");
    let (status, list) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{path}: {list}");
    list
}

fn field<'a>(list: &'a Value, target: &str) -> &'a Value {
    list["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["target"] == target)
        .unwrap_or_else(|| panic!("no {target} in {list}"))
}

fn targets(list: &Value) -> Vec<&str> {
    list["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["target"].as_str().expect("target"))
        .collect()
}

/// A draft Create Opportunity automation on a Salesforce connection: its id.
async fn opportunity_draft(env: &TestEnv) -> String {
    let conn = env.salesforce_connection("Org", "s3cret", "s3cret").await;
    let (status, draft) = env
        .call(
            Method::POST,
            "/v1/automations",
            Some(json!({"template": "salesforce.create_opportunity", "connection_id": conn["id"], "name": "Deal"})),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    draft["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn salesforce_describes_the_object_the_automation_creates() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = opportunity_draft(&env).await;
    let id = id.as_str();

    let list = fields(&env, id, "").await;
    assert_eq!(
        (list["source"].as_str(), list["object"].as_str()),
        (Some("vendor"), Some("Opportunity"))
    );
    assert_eq!(
        targets(&list),
        [
            "AccountId",
            "Amount",
            "CloseDate",
            "Description",
            "Name",
            "StageName"
        ],
        "createable fields only (no Id, no CreatedDate)"
    );
    let stage = field(&list, "StageName");
    assert_eq!(
        (
            stage["required"].as_bool(),
            stage["vendor_type"].as_str(),
            stage["parameter"].as_str()
        ),
        (Some(true), Some("picklist"), Some("StageName"))
    );
    assert!(
        stage["values"]
            .as_array()
            .expect("values")
            .contains(&json!("Closed Won")),
        "{stage}"
    );
    assert_eq!(field(&list, "CloseDate")["type"], "date");
    assert_eq!(field(&list, "Name")["max_length"], 120);
    assert_eq!(list["unmapped_required"], json!([]));
    assert_eq!(
        env.sandbox
            .requests_to("/sobjects/Opportunity/describe")
            .len(),
        1
    );

    env.stop().await;
}

#[tokio::test]
async fn another_object_is_described_on_request_and_a_wrong_one_is_named() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = opportunity_draft(&env).await;
    let id = id.as_str();
    // A Quote needs an opportunity, which no parameter of this draft gives.
    let quote = fields(&env, id, "?object=Quote").await;
    assert_eq!(quote["object"], "Quote");
    assert_eq!(
        quote["unmapped_required"],
        json!(["OpportunityId"]),
        "{quote}"
    );
    assert_eq!(field(&quote, "Name")["parameter"], "Name");
    // An int's digits bound it: what a parameter mapped to it may take as its range.
    let lead = fields(&env, id, "?object=Lead").await;
    let employees = field(&lead, "NumberOfEmployees");
    assert_eq!(
        (
            &employees["type"],
            &employees["minimum"],
            &employees["maximum"]
        ),
        (&json!("integer"), &json!(-99_999_999), &json!(99_999_999)),
        "{employees}"
    );

    let (status, err) = env
        .call(
            Method::GET,
            &format!("/v1/automations/{id}/fields?object=Spaceship"),
            None,
        )
        .await;
    // No such object at the vendor: the caller's to mend, named, with the vendor's words.
    assert_eq!(
        (status.as_u16(), &err["error"]["field"]),
        (422, &json!("object")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("NOT_FOUND"),
        "{err}"
    );
    for (query, field) in [
        ("?object=../limits", Some("object")),
        ("?object=1x", Some("object")),
        ("?shape=x", Some("shape")),
    ] {
        let (status, err) = env
            .call(
                Method::GET,
                &format!("/v1/automations/{id}/fields{query}"),
                None,
            )
            .await;
        assert_eq!(
            (status.as_u16(), err["error"]["field"].as_str()),
            (422, field),
            "{query}: {err}"
        );
    }
    env.stop().await;
}

#[tokio::test]
async fn servicenow_reads_the_tables_dictionary_with_what_it_inherits() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.incident_automation().await;
    let list = fields(&env, &automation, "").await;
    assert_eq!(
        (list["source"].as_str(), list["object"].as_str()),
        (Some("vendor"), Some("incident"))
    );
    let names = targets(&list);
    for inherited in ["short_description", "correlation_id", "priority"] {
        assert!(names.contains(&inherited), "task's {inherited}: {names:?}");
    }
    for own in ["caller_id", "urgency"] {
        assert!(names.contains(&own), "{own}: {names:?}");
    }
    assert!(
        !names.contains(&"number") && !names.contains(&"sys_id"),
        "read-only and system columns: {names:?}"
    );
    let caller = field(&list, "caller_id");
    assert_eq!(
        (
            caller["required"].as_bool(),
            caller["vendor_type"].as_str(),
            caller["parameter"].as_str()
        ),
        (Some(true), Some("reference"), Some("caller"))
    );
    assert_eq!(field(&list, "due_date")["type"], "date_time");
    // Each value once, whatever the languages its list is in; a list in French only counts.
    assert_eq!(field(&list, "urgency")["values"], json!(["1", "2", "3"]));
    assert_eq!(field(&list, "u_region")["values"], json!(["nord", "sud"]));
    assert_eq!(field(&list, "category")["values"][0], "inquiry");
    assert!(!env.sandbox.requests_to("/sys_db_object").is_empty());
    // A table the instance does not have is the caller's to mend, named.
    let path = format!("/v1/automations/{automation}/fields?object=u_spaceship");
    let (status, err) = env.call(Method::GET, &path, None).await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("object")),
        "{err}"
    );
    assert!(err.to_string().contains("no table 'u_spaceship'"), "{err}");

    // Without its `caller` parameter, the draft leaves the instance's mandatory caller unmapped.
    let path = format!("/v1/automations/{automation}");
    let (_, current) = env.call(Method::GET, &path, None).await;
    let params: Vec<Value> = current["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["name"] != "caller")
        .cloned()
        .collect();
    let (status, edited) = env
        .call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;
    assert_eq!(status, 200, "{edited}");
    let list = fields(&env, &automation, "").await;
    assert_eq!(list["unmapped_required"], json!(["caller_id"]), "{list}");
    assert!(field(&list, "caller_id").get("parameter").is_none());
    env.stop().await;
}

#[tokio::test]
async fn jira_answers_from_the_catalogue_until_a_project_and_issue_type_are_named() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env.jira_connection("jira-api-token").await;
    let automation = env
        .published_automation("jira.create_issue", &conn, "Issue", None)
        .await;
    let before = env.sandbox.requests().len();
    let list = fields(&env, &automation, "").await;
    assert_eq!(list["source"], "catalogue");
    assert!(list.get("object").is_none(), "{list}");
    let summary = field(&list, "fields.summary");
    assert_eq!(
        (summary["required"].as_bool(), summary["parameter"].as_str()),
        (Some(true), Some("summary"))
    );
    assert_eq!(env.sandbox.requests().len(), before, "no vendor call");

    // The create screen of ENG's bugs, custom fields included.
    let list = fields(&env, &automation, "?project=ENG&issue_type=bug").await;
    assert_eq!(
        (list["source"].as_str(), list["object"].as_str()),
        (Some("vendor"), Some("ENG/bug"))
    );
    let team = field(&list, "fields.customfield_10010");
    assert_eq!(team["label"], "Team");
    assert!(
        team["vendor_type"]
            .as_str()
            .expect("type")
            .contains("textfield"),
        "{team}"
    );
    assert!(team.get("parameter").is_none(), "{team}");
    let priority = field(&list, "fields.priority");
    assert_eq!(priority["required"], false, "it has a default: {priority}");
    assert_eq!(priority["values"][0], "Highest");
    assert_eq!(field(&list, "fields.labels")["type"], "string_list");
    assert!(
        !targets(&list).contains(&"fields.reporter"),
        "not settable on create"
    );
    assert_eq!(list["unmapped_required"], json!([]), "{list}");
    let screens = env.sandbox.requests_to("/createmeta/ENG/issuetypes");
    assert_eq!(screens.len(), 2, "the issue types, then the bug's screen");

    // Each refused naming the parameter at fault, the vendor's refusals with its words.
    for (query, field, needle) in [
        (
            "?project=NOPE&issue_type=Bug",
            "project",
            "No project could be found",
        ),
        (
            "?project=ENG&issue_type=Saga",
            "issue_type",
            "no issue type 'Saga'",
        ),
        (
            "?project=E-1&issue_type=Bug",
            "project",
            "not a project key",
        ),
        ("?project=ENG", "issue_type", "issue_type"),
        ("?object=Bug", "object", "object"),
    ] {
        let path = format!("/v1/automations/{automation}/fields{query}");
        let (got, err) = env.call(Method::GET, &path, None).await;
        assert_eq!(
            (got.as_u16(), err["error"]["field"].as_str()),
            (422, Some(field)),
            "{query}: {err}"
        );
        assert!(err.to_string().contains(needle), "{query}: {err}");
    }
    env.stop().await;
}

/// Jira answers fewer items than `maxResults` asks when its own page limit is lower: the issue
/// types and the create screen are read page by page, by `startAt`, until `total`.
#[tokio::test]
async fn jira_create_screens_are_read_across_pages() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env.jira_connection("jira-api-token").await;
    let automation = env
        .published_automation("jira.create_issue", &conn, "Issue", None)
        .await;
    let whole = fields(&env, &automation, "?project=ENG&issue_type=Task").await;
    env.sandbox
        .state
        .jira
        .meta_page_max
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let before = env.sandbox.requests_to("/createmeta/ENG/issuetypes").len();
    // Epic is the fourth issue type: on the second page of three.
    let paged = fields(&env, &automation, "?project=ENG&issue_type=Epic").await;
    assert_eq!(paged["object"], "ENG/Epic");
    assert_eq!(targets(&paged), targets(&whole));
    assert_eq!(paged["fields"], whole["fields"]);
    let asked: Vec<(String, String)> = env.sandbox.requests_to("/createmeta/ENG/issuetypes")
        [before..]
        .iter()
        .map(|r| {
            let query = r.query.clone().unwrap_or_default();
            (r.path.rsplit('/').next().unwrap_or("").to_string(), query)
        })
        .collect();
    let page = |of: &str, at: u32| (of.to_string(), format!("startAt={at}&maxResults=200"));
    assert_eq!(
        asked,
        [
            page("issuetypes", 0),
            page("issuetypes", 3),
            page("10004", 0),
            page("10004", 3),
            page("10004", 6)
        ],
        "the issue types in two pages, the Epic's nine fields in three"
    );
    env.stop().await;
}

#[tokio::test]
async fn only_those_who_configure_read_fields_and_only_their_own() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let id = opportunity_draft(&env).await;
    let viewer = env.token(Role::Viewer).await;
    let (status, _) = env
        .call_as(
            &viewer,
            Method::GET,
            &format!("/v1/automations/{id}/fields"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = env
        .call(
            Method::GET,
            &format!("/v1/automations/{}/fields", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = env
        .call(
            Method::GET,
            &format!("/v1/automations/{id}/fields?project=ENG&issue_type=Bug"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("project")),
        "{err}"
    );
    env.stop().await;
}

#[tokio::test]
async fn refused_credentials_say_so_and_show_no_secret() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env
        .salesforce_connection("Org", "right-secret", "wrong-secret")
        .await;
    let (status, draft) = env
        .call(
            Method::POST,
            "/v1/automations",
            Some(json!({"template": "salesforce.create_lead", "connection_id": conn["id"], "name": "Lead"})),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    let (status, err) = env
        .call(
            Method::GET,
            &format!(
                "/v1/automations/{}/fields",
                draft["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (502, Some("vendor_auth_failed")),
        "{err}"
    );
    for secret in ["right-secret", "wrong-secret"] {
        assert!(!err.to_string().contains(secret), "{err}");
    }
    env.stop().await;
}
