//! The admin console in a real browser, changing what exists: an editor mends a connection's
//! credentials and runs its failure again from Runs, reworks an automation's parameter table and
//! publishes it, renames, restores and deletes versions, pauses it, duplicates and deletes it;
//! an editor whose token is revoked mid-edit signs in again and saves the edit; an editor saving
//! an automation or a connection over another's change made since is refused, the edit kept.
//! Each step is checked against the API, not only the page; each test fails when a script
//! throws or the content security policy blocks anything (`Browser::close`).

use aic_control_plane::auth::Role;
use aic_tests::browser::{Browser, status, tile};
use aic_tests::harness::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get(env: &TestEnv, path: &str) -> Value {
    let (code, body) = env.call(Method::GET, path, None).await;
    assert_eq!(code, StatusCode::OK, "{path}: {body}");
    body
}

/// A connection "Sales org" given a secret the org does not know, and a published automation
/// "Leads" on it, whose runs fail until the secret is mended: their ids.
async fn failing_leads(env: &TestEnv) -> (String, String) {
    let connection = env
        .salesforce_connection("Sales org", "right", "wrong")
        .await;
    let connection = connection["id"].as_str().expect("id").to_string();
    let automation = env
        .published_automation("salesforce.create_lead", &connection, "Leads", None)
        .await;
    (connection, automation)
}

#[tokio::test]
async fn an_editor_mends_a_connection_and_runs_its_failure_again() {
    let env = TestEnv::start().await;
    let (_, automation) = failing_leads(&env).await;
    let failed = env
        .enqueue(
            &automation,
            json!({"LastName": "Curie", "Company": "Radium"}),
        )
        .await;
    let run = env.wait_final(&failed).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["result"]["error"]["code"], "vendor_auth_failed",
        "{run}"
    );

    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Editor).await).await;
    b.click("//nav", "Runs").await;
    let row = "//tr[td/button[normalize-space()='Leads']]";
    b.element(&status(row, "failed")).await;
    b.wait_for_text("vendor_auth_failed: ").await;

    // Re-authorised from the connection's Edit: only the secret given is replaced.
    b.click("//nav", "Connections").await;
    b.click(&tile("Sales org"), "Edit").await;
    b.fill("client_secret", "right").await;
    b.click("", "Save").await;
    b.flash_saying("Connection saved").await;
    b.element(&status(&tile("Sales org"), "untested")).await;
    b.click(&tile("Sales org"), "Test").await;
    b.flash_saying("Connected: ").await;
    b.element(&status(&tile("Sales org"), "connected")).await;

    // Runs: the failure run again, once, and marked so.
    b.click("//nav", "Runs").await;
    b.click(row, "Run again").await;
    let (said, error) = b.flash_saying("Running again as ").await;
    assert!(!error, "{said}");
    let again = said.trim_start_matches("Running again as ").trim();
    assert_eq!(env.wait_final(again).await["status"], "succeeded");
    let first = get(&env, &format!("/v1/executions/{failed}")).await;
    assert_eq!(first["rerun_id"], again, "{first}");
    b.click("//nav", "Runs").await;
    b.wait_for_text("failed run again").await;
    b.element(&status(row, "succeeded")).await;
    let leads = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(leads.len(), 1, "one lead, made by the run again");
    assert_eq!(leads[0].1["LastName"], "Curie");
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn an_editor_reworks_an_automation_through_its_versions() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Editor).await).await;
    b.edit_automation("Create lead").await;
    b.wait_for_text("Live: version 1 (Version 1)").await;

    // The parameter table: a row added for the lead's status, the phone's row deleted.
    b.click("", "+ Create").await;
    let last = |label: &str| format!("(//input[@aria-label='{label}'])[last()]");
    b.element(&last("Parameter name"))
        .await
        .send_keys("Stage")
        .await
        .expect("typed");
    b.element(&last("Field"))
        .await
        .send_keys("Status")
        .await
        .expect("typed");
    // (An input's value is a property, not an attribute XPath could read.)
    let fields = "[...document.querySelectorAll('input[aria-label=Field]')]";
    let phone = b
        .eval(&format!(
            "return {fields}.findIndex(i => i.value === 'Phone') + 1"
        ))
        .await;
    assert!(phone.as_i64().unwrap_or(0) > 0, "a row maps Phone");
    let phone = format!("(//input[@aria-label='Field'])[{phone}]/ancestor::tr");
    b.click(&phone, "Delete").await;
    // The head count's row, bounded as a number by the catalogue, made text: its bounds go.
    let retyped = b
        .eval(&format!(
            "const row = {fields}.find(i => i.value === 'NumberOfEmployees')?.closest('tr'); \
             const type = row?.querySelector('select'); if (!type) return false; \
             type.value = 'string'; type.dispatchEvent(new Event('change', {{bubbles: true}})); \
             return true"
        ))
        .await;
    assert_eq!(retyped, json!(true), "a row maps NumberOfEmployees");
    b.click("", "Publish").await;
    b.accept_dialog(Some("With a stage")).await;
    b.flash_saying("Published").await;
    b.wait_for_text("Live: version 2 (With a stage)").await;
    let live = get(&env, &format!("/v1/automations/{automation}")).await;
    let parameters = live["parameters"].as_array().expect("parameters");
    let stage = parameters.iter().find(|p| p["name"] == "Stage");
    assert_eq!(stage.expect("added")["target"], "Status", "{live}");
    assert!(parameters.iter().all(|p| p["target"] != "Phone"), "{live}");
    let employees = parameters
        .iter()
        .find(|p| p["target"] == "NumberOfEmployees");
    let employees = employees.expect("kept");
    assert_eq!(
        (
            &employees["type"],
            employees.get("minimum"),
            employees.get("maximum")
        ),
        (&json!("string"), None, None),
        "{live}"
    );
    let id = env
        .enqueue(
            &automation,
            json!({"LastName": "Noether", "Company": "Erlangen", "Stage": "Open"}),
        )
        .await;
    assert_eq!(env.wait_final(&id).await["status"], "succeeded");
    let leads = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(
        leads[0].1["Status"], "Open",
        "the new parameter reached Salesforce"
    );

    // The version history: version 1 renamed, restored, then version 2 deleted.
    let v1 = "//tr[td[normalize-space()='1']]";
    // A name refused stays said above the history drawn again.
    b.click(v1, "Rename").await;
    b.accept_dialog(Some(&"x".repeat(201))).await;
    let (said, error) = b.flash_saying("(name)").await;
    assert!(error, "{said}");
    b.click(v1, "Rename").await;
    b.accept_dialog(Some("Original")).await;
    b.flash_saying("Renamed").await;
    // Restoring puts a version live at once: asked first, and nothing done when declined.
    b.click(v1, "Restore").await;
    let asked = b.dismiss_dialog().await;
    assert!(
        asked.starts_with("Restore version 1 (Original)? It goes live at once"),
        "{asked}"
    );
    let live = get(&env, &format!("/v1/automations/{automation}")).await;
    assert_eq!(live["published_version"]["number"], 2, "{live}");
    b.click(v1, "Restore").await;
    b.accept_dialog(None).await;
    b.flash_saying("Restored").await;
    b.wait_for_text("Live: version 1 (Original)").await;
    b.element("//tr[td[normalize-space()='2']]//input[@type='checkbox']")
        .await
        .click()
        .await
        .expect("checked");
    b.click("", "Delete the selected versions").await;
    b.accept_dialog(None).await;
    b.flash_saying("Versions deleted").await;
    let versions = get(&env, &format!("/v1/automations/{automation}/versions")).await;
    let numbers: Vec<&Value> = versions
        .as_array()
        .expect("list")
        .iter()
        .map(|v| &v["number"])
        .collect();
    assert_eq!(numbers, [&json!(1)], "{versions}");

    // Paused from the editor: refused at once.
    b.choose("Status", "paused").await;
    b.click("", "Save as draft").await;
    b.flash_saying("Draft saved").await;
    let (code, body) = env
        .call(
            Method::POST,
            &format!("/v1/automations/{automation}/executions"),
            Some(json!({"parameters": {"LastName": "Meitner", "Company": "KWI"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "automation_paused", "{body}");

    // Duplicated, then the copy deleted.
    b.click("", "Back").await;
    b.click(&tile("Create lead"), "Duplicate").await;
    b.flash_saying("Duplicated").await;
    b.wait_for_text("Never published").await;
    b.click("", "Back").await;
    b.click(&tile("Create lead (copy)"), "Delete").await;
    b.accept_dialog(None).await;
    b.flash_saying("Automation deleted").await;
    b.element(&tile("Create lead")).await;
    let list = get(&env, "/v1/automations").await;
    assert_eq!(list.as_array().expect("list").len(), 1, "{list}");
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn the_last_hours_failures_are_run_again_at_once_and_runs_come_a_page_at_a_time() {
    let env = TestEnv::start().await;
    let (connection, automation) = failing_leads(&env).await;
    let connection = connection.as_str();
    let mut failed = Vec::new();
    for n in 0..55 {
        let values = json!({"LastName": format!("Lead {n}"), "Company": "Acme"});
        failed.push(env.enqueue(&automation, values).await);
    }
    for id in &failed {
        assert_eq!(env.wait_final(id).await["status"], "failed");
    }
    // Mended through the API: the right secret, the connection tested.
    let path = format!("/v1/connections/{connection}");
    let (code, body) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"secrets": {"client_secret": "right"}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(env.test_connection(connection).await["ok"], true);

    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Editor).await).await;
    b.click("//nav", "Runs").await;
    b.choose("Since", "1").await;
    b.click("", "Run the failures again").await;
    b.accept_dialog(None).await;
    let (said, error) = b.flash_saying(" run again").await;
    assert!(!error && said == "55 run again", "{said}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.sandbox.state.salesforce.records("Lead").len() < 55 {
        assert!(
            std::time::Instant::now() < deadline,
            "the re-runs did not all succeed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for id in &failed {
        let first = get(&env, &format!("/v1/executions/{id}")).await;
        assert!(first["rerun_id"].is_string(), "{first}");
    }

    // Every run, fifty at a time: 110 in three pages.
    b.click("//nav", "Runs").await;
    let shown = async |b: &Browser| {
        let rows = "return document.querySelectorAll('#main tbody tr:not([hidden])').length";
        b.eval(rows).await.as_u64().unwrap_or(0)
    };
    for expected in [50, 100, 110] {
        b.wait_until(&format!("{expected} runs listed"), async |b| {
            shown(b).await == expected
        })
        .await;
        if expected < 110 {
            b.click("", "More").await;
        }
    }
    let more = b.client.find(fantoccini::Locator::XPath(
        "//button[normalize-space()='More']",
    ));
    assert!(
        !more
            .await
            .expect("in the page")
            .is_displayed()
            .await
            .expect("reads")
    );
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn an_editor_whose_token_is_revoked_mid_edit_signs_in_again_and_keeps_the_edits() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let automation = env.lead_automation().await;
    let editor = env.issued(Role::Editor, "Eve").await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&editor.token).await;
    b.edit_automation("Create lead").await;
    b.fill("Unique name", "Leads from the web").await;
    env.revoke(editor.token_id).await;

    // The save is refused: a sign-in above the page, the edit kept under it.
    b.click("", "Save as draft").await;
    let (said, error) = b.flash_saying("unauthenticated: ").await;
    assert!(error, "{said}");
    let again = "//div[@id='sign-in-again']";
    b.element(&format!("{again}//h3[normalize-space()='Sign in again']"))
        .await;
    let name = b.value("Unique name").await;
    assert_eq!(name.as_deref(), Some("Leads from the web"));
    // A wrong token is refused there too; the right one lets the save through.
    b.fill("API token", "aic_unknown").await;
    b.click(again, "Sign in").await;
    b.element(&format!("{again}//button[.='Sign in' and not(@aria-busy)]"))
        .await;
    b.element(again).await;
    b.fill("API token", &env.admin_token).await;
    b.click(again, "Sign in").await;
    b.flash_saying("Signed in again: save what you changed.")
        .await;
    assert!(!b.text().await.contains("Sign in again"));
    b.click("", "Save as draft").await;
    b.flash_saying("Draft saved").await;
    let saved = get(&env, &format!("/v1/automations/{automation}")).await;
    assert_eq!(saved["name"], "Leads from the web", "{saved}");
    assert_eq!(b.fragment().await, format!("/editor/{automation}"));
    b.close().await;
    env.stop().await;
}

/// Bob, another editor, changes `at` through the API while the browser's form is open.
async fn bob_changes(env: &TestEnv, at: &str, change: Value) {
    let bob = env.issued(Role::Editor, "bob").await.token;
    let (code, body) = env.call_as(&bob, Method::PATCH, at, Some(change)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// Saves with the button `save`: refused, as made over Bob's change to the `kind`.
async fn refused_over_bobs(b: &Browser, save: &str, kind: &str) {
    b.click("", save).await;
    let (said, error) = b.flash_saying("precondition_failed: ").await;
    let whose = format!("{kind}.updated by 'bob'");
    assert!(error && said.contains(&whose), "{said}");
}

#[tokio::test]
async fn an_editor_saving_over_a_change_made_since_keeps_both_and_is_told_whose() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let automation = env.lead_automation().await;
    let at = format!("/v1/automations/{automation}");
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Editor).await).await;
    b.edit_automation("Create lead").await;
    b.fill("Description", "Leads from the web form").await;
    // Meanwhile Bob pauses it (an incident at the vendor).
    bob_changes(&env, &at, json!({"status": "paused"})).await;

    // The editor's save (status "running" as read) is refused: the pause stands, the edit stays.
    refused_over_bobs(&b, "Save as draft", "automation").await;
    let now = get(&env, &at).await;
    assert_eq!(
        (now["status"].as_str(), now["description"].as_str()),
        (Some("paused"), Some("")),
        "{now}"
    );
    let kept = b.value("Description").await;
    assert_eq!(kept.as_deref(), Some("Leads from the web form"));

    // Opened again (the unsaved edit dropped on purpose), the pause shows and a save keeps it.
    b.click("//nav", "Automations").await;
    b.accept_dialog(None).await;
    b.click(&tile("Create lead"), "Edit").await;
    assert_eq!(b.value("Status").await.as_deref(), Some("paused"));
    b.fill("Description", "Leads from the web form").await;
    b.click("", "Save as draft").await;
    b.flash_saying("Draft saved").await;
    let now = get(&env, &at).await;
    assert_eq!(
        (now["status"].as_str(), now["description"].as_str()),
        (Some("paused"), Some("Leads from the web form")),
        "{now}"
    );
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_connection_saved_over_a_rename_made_since_keeps_the_rename() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let connection = env
        .salesforce_connection("Sales org", "right", "right")
        .await;
    let at = format!("/v1/connections/{}", connection["id"].as_str().expect("id"));
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Editor).await).await;
    b.click("//nav", "Connections").await;
    b.click(&tile("Sales org"), "Edit").await;
    b.fill("Most vendor calls in flight", "5").await;
    bob_changes(&env, &at, json!({"name": "Sales org (EMEA)"})).await;

    refused_over_bobs(&b, "Save", "connection").await;
    let now = get(&env, &at).await;
    assert_eq!(
        (now["name"].as_str(), &now["max_concurrency"]),
        (Some("Sales org (EMEA)"), &Value::Null),
        "{now}"
    );
    let kept = b.value("Most vendor calls in flight").await;
    assert_eq!(kept.as_deref(), Some("5"));
    b.close().await;
    env.stop().await;
}
