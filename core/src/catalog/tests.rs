use super::*;

#[test]
fn the_compiled_in_catalogue_is_valid_and_spans_twenty_domains() {
    let c = Catalog::load().expect("valid catalogue");
    assert!(c.domains().len() >= 20);
    let lead = c
        .template("salesforce", "create_lead")
        .expect("lead template");
    let required: Vec<_> = lead
        .parameters
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(required, ["LastName", "Company"]);
    assert!(
        c.template("jira", "add_comment").is_some()
            && c.template("slack", "send_message").is_some()
    );
}

#[test]
fn search_ignores_case_and_accents_and_filters_by_domain() {
    let c = Catalog::load().expect("valid catalogue");
    let ids =
        |v: Vec<(&App, &[Template])>| v.into_iter().map(|(a, _)| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(c.search(None, Some("TICKÉT"))), ["jira", "servicenow"]);
    assert_eq!(ids(c.search(Some("communications"), None)), ["slack"]);
    assert_eq!(ids(c.search(Some("sales"), Some("lead"))), ["salesforce"]);
    assert!(c.search(None, Some("nothing-matches-this")).is_empty());
    assert_eq!(fold("Réseau Été"), "reseau ete");
}

fn broken(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(APPS[1].1).expect("parses");
    edit(&mut v);
    let text = v.to_string();
    Catalog::from_sources(&[("domains.json", DOMAINS), ("jira.json", &text)])
        .expect_err("refused")
        .to_string()
}

#[test]
fn a_broken_definition_is_refused_with_its_name() {
    let e = broken(|v| v["templates"][1]["path"] = "/rest/api/3/issue/{key}/comment".into());
    assert!(
        e.contains("jira.json") && e.contains("jira.add_comment") && e.contains("placeholders"),
        "{e}"
    );
    let e = broken(|v| v["templates"][0]["parameters"][0]["type"] = "colour".into());
    assert!(e.contains("jira.json") && e.contains("colour"), "{e}");
    let e = broken(|v| v["app"]["domains"][0] = "astrology".into());
    assert!(e.contains("astrology"), "{e}");
    let e = broken(|v| v["app"]["auth_types"][0]["field_help"]["api_token"] = "".into());
    assert!(
        e.contains("jira.json") && e.contains("'basic'") && e.contains("field_help"),
        "{e}"
    );
    let e = broken(|v| v["app"]["auth_types"][1]["field_help"]["colour"] = "red".into());
    assert!(e.contains("'oauth2_3lo'") && e.contains("colour"), "{e}");
    let e = broken(|v| v["app"]["auth_types"][0]["instructions"] = " ".into());
    assert!(e.contains("no instructions"), "{e}");
    let e = broken(|v| v["templates"][0]["domain"] = "astrology".into());
    assert!(e.contains("jira.create_issue"), "{e}");
    let e = broken(|v| v["templates"][0]["rate_limit_scope"] = "/fields/colour".into());
    assert!(
        e.contains("jira.create_issue") && e.contains("rate_limit_scope '/fields/colour'"),
        "{e}"
    );
    // A scope on a required body field is accepted.
    let mut v: serde_json::Value = serde_json::from_str(APPS[1].1).expect("parses");
    v["templates"][0]["rate_limit_scope"] = "/fields/summary".into();
    let text = v.to_string();
    Catalog::from_sources(&[("domains.json", DOMAINS), ("jira.json", &text)])
        .expect("a scope on fields.summary is valid");
    let slack = Catalog::load().expect("valid catalogue");
    let send = slack.template("slack", "send_message").expect("send");
    assert_eq!(send.rate_limit_scope.as_deref(), Some("/channel"));
}
