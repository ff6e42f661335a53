//! The admin console in a real browser (a headless Chromium): an admin's whole set-up — sign
//! in, connect Salesforce, set up, test and publish an automation, find its runs — what the API
//! refuses shown with its code and field, names shown as text and never as markup, a viewer's
//! read-only console, tokens issued once and revoked (one while in use), a double-click that
//! acts once (`console_browser_changes.rs` changes what exists, `console_browser_addresses.rs`
//! moves between pages). Each test also fails when a script throws or the content security policy
//! refuses anything (`Browser::close`).

use aic_control_plane::auth::Role;
use aic_tests::browser::{Browser, status, tile};
use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn an_admin_connects_salesforce_then_tests_and_publishes_an_automation() {
    let env = TestEnv::start().await;
    let client_id = format!("3MVG9{}", uuid::Uuid::new_v4().simple());
    env.sandbox
        .state
        .salesforce
        .add_client(&client_id, "right-secret");
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    let who = b
        .element("//span[@id='who']")
        .await
        .text()
        .await
        .expect("who");
    assert!(who.contains("(admin)"), "{who}");
    b.wait_for_text("No connection yet").await;

    // All integrations → Salesforce: tested before it is saved, the wrong secret first.
    b.click("", "Add a new connection").await;
    b.click(&tile("Salesforce"), "Set up").await;
    b.fill("Domain", &env.sandbox.url()).await;
    b.fill("client_id *", &client_id).await;
    b.fill("client_secret *", "wrong-secret").await;
    b.click("", "Test connection").await;
    let (said, error) = b.flash_saying("Failed: ").await;
    assert!(error, "a failed test is shown as an error: {said}");
    assert!(!b.text().await.contains("wrong-secret"));
    b.fill("client_secret *", "right-secret").await;
    b.click("", "Test connection").await;
    let (said, error) = b.flash_saying("Connected: ").await;
    assert!(!error, "{said}");
    b.click("", "Save").await;
    b.flash_saying("Connection saved").await;
    // My connections: the tile, tested again from it.
    b.click(&tile("Salesforce"), "Test").await;
    b.flash_saying("Connected: ").await;
    b.element(&status(&tile("Salesforce"), "connected")).await;

    // All automations → Create Lead: a draft, the app's own fields, a test run, published.
    b.click("//nav", "Automations").await;
    b.wait_for_text("No automation yet").await;
    b.click("", "All automations").await;
    b.click(&tile("Create Lead"), "Set up").await;
    b.fill("Unique name", "Leads from the browser").await;
    b.click("", "Create draft").await;
    b.flash_saying("Draft saved").await;
    b.element("//h2[normalize-space()='Leads from the browser']")
        .await;
    b.click("", "Fields from the app").await;
    b.wait_for_text("fields from the app (Lead)").await;
    b.fill(
        "Parameter values (JSON)",
        r#"{"LastName": "Lovelace", "Company": "Analytical Engines"}"#,
    )
    .await;
    b.click("", "Test automation").await;
    b.element(&status("//div[h3='Test automation']", "succeeded"))
        .await;
    let leads = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(leads.len(), 1, "the test run created one lead");
    assert_eq!(leads[0].1["LastName"], "Lovelace");
    b.click("", "Publish").await;
    b.accept_dialog(Some("First release")).await;
    b.flash_saying("Published").await;
    b.wait_for_text("Live: version 1 (First release)").await;
    b.element(&status("//tr[td[normalize-space()='1']]", "live"))
        .await;
    // Published again unchanged: nothing new, and the console says so.
    b.click("", "Publish").await;
    b.accept_dialog(Some("")).await;
    b.flash_saying("Nothing to publish: the draft is unchanged since version 1")
        .await;

    // A flow runs it; Runs shows the run under the automation's name, its record on request.
    let (code, list) = env.call(Method::GET, "/v1/automations", None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let automation = list[0]["id"].as_str().expect("id");
    let execution = env
        .enqueue(automation, json!({"LastName": "Hopper", "Company": "Navy"}))
        .await;
    assert_eq!(env.wait_final(&execution).await["status"], "succeeded");
    b.click("//nav", "Runs").await;
    let row = "//tr[td/button[normalize-space()='Leads from the browser']]";
    b.element(&status(row, "succeeded")).await;
    b.click(row, "Details").await;
    b.wait_for_text(&execution).await;
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn what_the_api_refuses_the_console_says_with_its_code_and_field() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let b = Browser::console(&env.api).await;
    // Tokens that cannot sign in: an unknown one, a service one.
    b.sign_in("aic_unknown").await;
    let (said, error) = b.flash_saying("unauthenticated: ").await;
    assert!(error, "{said}");
    b.element("//div[@id='flash']/div[@role='alert']").await;
    b.wait_for_text("The token is unknown, expired or revoked.")
        .await;
    b.sign_in(&env.token(Role::Service).await).await;
    b.flash_saying("A service token only runs automations")
        .await;
    b.sign_in(&env.admin_token).await;
    b.element("//nav//button[normalize-space()='Tokens']").await;

    // A connection refused field by field, then saved under a name that is markup.
    b.click("", "Add a new connection").await;
    b.click(&tile("Salesforce"), "Set up").await;
    let name = r#"<img src=x onerror="document.title='pwned'"> & Co"#;
    b.fill("Connection name", name).await;
    b.fill("Domain", "https://intranet.example.com").await;
    b.fill("client_id *", "3MVG9abc").await;
    b.fill("client_secret *", "s3cret").await;
    b.click("", "Save").await;
    let (said, error) = b.flash_saying("(domain)").await;
    assert!(error && said.starts_with("validation_failed: "), "{said}");
    b.fill("Domain", &env.sandbox.url()).await;
    b.field("client_secret *")
        .await
        .clear()
        .await
        .expect("clears");
    b.click("", "Save").await;
    let (said, _) = b.flash_saying("(secrets.client_secret)").await;
    assert!(
        said.starts_with("validation_failed: ") && said.contains("'client_secret' is required"),
        "{said}"
    );
    b.fill("client_secret *", "s3cret").await;
    b.click("", "Save").await;
    b.flash_saying("Connection saved").await;
    b.element(&tile(name)).await;
    assert_eq!(
        b.eval("return document.querySelectorAll('#main img').length")
            .await,
        0,
        "the name is text, not an element"
    );
    assert_ne!(b.client.title().await.expect("title"), "pwned");

    // The test panel: values that are not JSON, then a required parameter left out.
    let connection = env.call(Method::GET, "/v1/connections", None).await.1[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    env.published_automation("salesforce.create_lead", &connection, "Leads", None)
        .await;
    b.edit_automation("Leads").await;
    b.fill("Parameter values (JSON)", "{LastName: 1").await;
    b.click("", "Test automation").await;
    let (said, error) = b.flash_saying("not JSON").await;
    assert!(error && said.ends_with("(parameters)"), "{said}");
    b.fill("Parameter values (JSON)", r#"{"LastName": "Lovelace"}"#)
        .await;
    b.click("", "Test automation").await;
    let (said, error) = b.flash_saying("(parameters.Company)").await;
    assert!(error && said.starts_with("validation_failed: "), "{said}");
    assert!(env.sandbox.state.salesforce.records("Lead").is_empty());
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_viewer_only_reads_and_an_admin_issues_a_token_once_and_revokes_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    env.salesforce_connection("Sales org", "s3cret", "s3cret")
        .await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.token(Role::Viewer).await).await;
    b.element(&tile("Sales org")).await;
    for hidden in [
        "//button[normalize-space()='Add a new connection']",
        &format!("{}//button[normalize-space()='Edit']", tile("Sales org")),
        &format!("{}//button[normalize-space()='Delete']", tile("Sales org")),
        "//nav//button[normalize-space()='Tokens']",
        "//nav//button[normalize-space()='Audit trail']",
    ] {
        let shown = b.client.find(fantoccini::Locator::XPath(hidden)).await;
        let shown = shown
            .expect("in the page")
            .is_displayed()
            .await
            .expect("reads");
        assert!(!shown, "a viewer is shown {hidden}");
    }
    b.click("", "Sign out").await;
    b.wait_for_text("Signed out.").await;
    b.client.refresh().await.expect("reloads");
    b.wait_for_text("Sign in").await;
    assert!(!b.text().await.contains("Sales org"), "signed out for good");

    // An admin, still signed in after a reload, issues a service token.
    b.sign_in(&env.admin_token).await;
    b.element("//nav//button[normalize-space()='Tokens']").await;
    b.client.refresh().await.expect("reloads");
    b.click("//nav", "Tokens").await;
    b.fill("Token name", "Onboarding flow").await;
    // Its last day today, typed as the admin's locale shows a date: it works until the day ends.
    let typed = b
        .eval("return new Date().toLocaleDateString(undefined, {year: 'numeric', month: '2-digit', day: '2-digit'})")
        .await;
    let digits: String = typed
        .as_str()
        .expect("a date")
        .matches(char::is_numeric)
        .collect();
    b.fill("Expires", &digits).await;
    b.click("", "Issue").await;
    b.flash_saying("Token issued").await;
    let tonight = b
        .eval("const d = new Date(); d.setHours(23, 59, 59, 999); return d.toISOString()")
        .await;
    let (_, tokens) = env.call(Method::GET, "/v1/tokens", None).await;
    let issued = tokens.as_array().expect("list").iter();
    let issued = issued
        .filter(|t| t["name"] == "Onboarding flow")
        .collect::<Vec<_>>();
    let at = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
    };
    assert_eq!(at(&issued[0]["expires_at"]), at(&tonight), "{tokens}");
    let token = b
        .element("//div[@class='secret']")
        .await
        .text()
        .await
        .expect("text");
    assert!(token.starts_with("aic_"), "{token}");
    let me = |token: String| {
        let url = format!("{}/v1/me", env.api);
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await;
            let resp = resp.expect("answers");
            (resp.status(), resp.text().await.expect("body"))
        }
    };
    let (code, body) = me(token.clone()).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body.contains("Onboarding flow"), "{body}");
    let row = "//tr[td[normalize-space()='Onboarding flow']]";
    b.element(&status(row, "active")).await;
    b.click(row, "Revoke").await;
    b.accept_dialog(None).await;
    b.flash_saying("Token revoked").await;
    b.element(&status(row, "revoked")).await;
    assert!(!b.text().await.contains(&token), "shown once only");
    assert_eq!(me(token).await.0, StatusCode::UNAUTHORIZED);

    // The audit trail: both, and one action alone.
    b.click("//nav", "Audit trail").await;
    b.click("//tr", "token.revoked").await;
    b.element("//button[normalize-space()='token.revoked ×']")
        .await;
    b.wait_until("only the revocation listed", async |b| {
        let text = b.text().await;
        text.contains("token: Onboarding flow") && !text.contains("token.issued")
    })
    .await;
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_double_click_tests_an_automation_once_and_issues_one_token() {
    let env = TestEnv::start_with(Options::api_only()).await;
    env.lead_automation().await;
    // The vendor answers in 400 ms: the first click's call is in flight at the second click.
    env.sandbox.set_latency(Duration::from_millis(400));
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.edit_automation("Create lead").await;
    b.fill(
        "Parameter values (JSON)",
        r#"{"LastName": "Twice", "Company": "Acme"}"#,
    )
    .await;
    b.double_click("", "Test automation").await;
    b.element(&status("//div[h3='Test automation']", "succeeded"))
        .await;
    // A second call would have been sent at once and answered by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let leads = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(leads.len(), 1, "one test run, one lead: {leads:?}");

    b.click("//nav", "Tokens").await;
    b.fill("Token name", "Issued once").await;
    b.double_click("", "Issue").await;
    b.flash_saying("Token issued").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, tokens) = env.call(Method::GET, "/v1/tokens", None).await;
    assert_eq!(code, StatusCode::OK, "{tokens}");
    let issued = tokens.as_array().expect("list").iter();
    assert_eq!(
        issued.filter(|t| t["name"] == "Issued once").count(),
        1,
        "{tokens}"
    );
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_token_revoked_while_signed_in_leaves_the_sign_in_form_and_nothing_over_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let editor = env.issued(Role::Editor, "Eve").await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&editor.token).await;
    b.wait_for_text("No connection yet").await;
    env.revoke(editor.token_id).await;

    // The next page's call is refused: the sign-in form says why, the API's code above it,
    // and the page that asked draws nothing over the form.
    b.click("//nav", "Runs").await;
    let (said, error) = b.flash_saying("unauthenticated: ").await;
    assert!(error, "{said}");
    b.element("//h2[normalize-space()='Sign in']").await;
    let page = b
        .wait_for_text("The token is unknown, expired or revoked.")
        .await;
    assert!(!page.contains("This page cannot be shown"), "{page}");
    let nav = b.eval("return document.getElementById('nav').hidden").await;
    assert_eq!(nav, json!(true), "{page}");

    // Signed in again, the page asked for is shown.
    b.sign_in(&env.admin_token).await;
    b.element("//h2[normalize-space()='Runs']").await;
    assert_eq!(b.fragment().await, "/runs");
    b.close().await;
    env.stop().await;
}

/// A connection tested from its tile is shown as the test left it, the vendor's words above:
/// refused, `failing`; re-authorised by another admin while it was tested, as that edit left
/// it (`untested`), saying why nothing was recorded. Its deletion refused, the list is drawn
/// again as others left it, the refusal above it.
#[tokio::test]
async fn a_connection_acted_on_from_its_tile_is_shown_as_it_was_left() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let site = &env.sandbox.state.jira;
    site.add_oauth_app("atl-client", "atl-secret", "rt-granted-again");
    let secrets = json!({"client_id": "atl-client", "client_secret": "atl-secret",
        "refresh_token": "rt-revoked", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889901"});
    let conn = env
        .connection("Jira site", "jira", "oauth2_3lo", secrets)
        .await;
    let id = conn["id"].as_str().expect("id");
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.element(&status(&tile("Jira site"), "untested")).await;
    b.click(&tile("Jira site"), "Test").await;
    let (said, error) = b.flash_saying("Failed: ").await;
    assert!(error, "{said}");
    b.element(&status(&tile("Jira site"), "failing")).await;

    site.refresh_latency_ms.store(2_000, Ordering::SeqCst);
    b.click(&tile("Jira site"), "Test").await;
    site.until_refreshes(2).await;
    let path = format!("/v1/connections/{id}");
    let body = json!({"secrets": {"refresh_token": "rt-granted-again"}});
    let (code, saved) = env.call(Method::PATCH, &path, Some(body)).await;
    assert_eq!(code, 200, "{saved}");
    let (said, error) = b.flash_saying("connection_reauthorised: ").await;
    assert!(error, "{said}");
    b.element(&status(&tile("Jira site"), "untested")).await;

    // Meanwhile an automation was set up on it: the deletion is refused, naming it.
    env.published_automation("jira.create_issue", id, "Issues", None)
        .await;
    b.click(&tile("Jira site"), "Delete").await;
    b.accept_dialog(None).await;
    let (said, error) = b.flash_saying("connection_in_use: ").await;
    assert!(error && said.contains("Issues"), "{said}");
    let counted = format!("{}//div[contains(., '1 automations')]", tile("Jira site"));
    b.element(&counted).await;
    b.close().await;
    env.stop().await;
}
