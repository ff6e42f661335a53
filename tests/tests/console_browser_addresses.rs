//! The admin console in a real browser, moving between its pages: each page and form has an
//! address that a reload, Back, Forward and a link return to; an address that is none, or names
//! what is gone, still leaves a working page; a page answering late is not shown over the one
//! opened after it; leaving unsaved changes asks first. Each test also fails when a script
//! throws or the content security policy refuses anything (`Browser::close`).

use aic_control_plane::auth::Role;
use aic_tests::browser::{Browser, tile};
use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn get(env: &TestEnv, path: &str) -> Value {
    let (code, body) = env.call(Method::GET, path, None).await;
    assert_eq!(code, StatusCode::OK, "{path}: {body}");
    body
}

#[tokio::test]
async fn the_address_names_the_page_so_reloads_back_and_links_return_to_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.edit_automation("Create lead").await;
    let editor = "Live: version 1 (Version 1)";
    b.wait_for_text(editor).await;
    assert_eq!(b.fragment().await, format!("/editor/{automation}"));
    b.client.refresh().await.expect("reloads");
    b.wait_for_text(editor).await;

    // Runs, filtered: the filter in the address, kept by a reload.
    b.click("//nav", "Runs").await;
    b.choose("Status", "failed").await;
    b.wait_until("the filter in the address", async |b| {
        b.fragment().await == "/runs?status=failed"
    })
    .await;
    b.client.refresh().await.expect("reloads");
    b.wait_until("the filter chosen again", async |b| {
        let chosen = "return document.querySelector('select[aria-label=Status]')?.value";
        b.eval(chosen).await == "failed"
    })
    .await;

    // Back: Runs unfiltered, the editor, the list; Forward: the editor again.
    b.client.back().await.expect("back");
    b.element("//select[@aria-label='Status']/option[@value=''][@selected]")
        .await;
    b.client.back().await.expect("back");
    b.wait_for_text(editor).await;
    b.client.back().await.expect("back");
    b.element(&format!(
        "{}//button[normalize-space()='Duplicate']",
        tile("Create lead")
    ))
    .await;
    b.client.forward().await.expect("forward");
    b.wait_for_text(editor).await;
    b.close().await;

    // A link, in a browser of its own: signed in, it opens the page it names; a viewer's
    // link to an admin's page opens the connections.
    let other = Browser::start().await;
    let link = format!("{}/console#/editor/{automation}", env.api);
    other.open(&link).await;
    other.sign_in(&env.admin_token).await;
    other.wait_for_text(editor).await;
    other.close().await;
    let viewer = Browser::start().await;
    viewer.open(&format!("{}/console#/tokens", env.api)).await;
    viewer.sign_in(&env.token(Role::Viewer).await).await;
    viewer.element(&tile("Sales org")).await;
    viewer.close().await;

    // An address that is not one shows the connections; one naming what is gone says so.
    let gone = Browser::start().await;
    gone.open(&format!("{}/console#/editor/%E0%A4%A", env.api))
        .await;
    gone.sign_in(&env.admin_token).await;
    gone.element(&tile("Sales org")).await;
    let deleted = uuid::Uuid::new_v4();
    gone.open(&format!("{}/console#/editor/{deleted}", env.api))
        .await;
    let (said, error) = gone.flash_saying("not_found: ").await;
    assert!(error, "{said}");
    gone.click("", "Back to the connections").await;
    gone.element(&tile("Sales org")).await;
    gone.close().await;
    env.stop().await;
}

#[tokio::test]
async fn the_forms_have_addresses_too() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let connection = env
        .salesforce_connection("Sales org", "s3cret", "s3cret")
        .await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    // An app's set-up form: kept by a reload, left by Back for the list it came from.
    b.click("", "Add a new connection").await;
    b.click(&tile("Salesforce"), "Set up").await;
    b.wait_for_text("Set up Salesforce").await;
    assert_eq!(b.fragment().await, "/connection-setup/salesforce");
    b.client.refresh().await.expect("reloads");
    b.field("client_secret *").await;
    b.client.back().await.expect("back");
    b.element(&format!(
        "{}//button[normalize-space()='Set up']",
        tile("Salesforce")
    ))
    .await;
    assert_eq!(b.fragment().await, "/connections/all");
    // A connection's edit form.
    b.client.back().await.expect("back");
    b.click(&tile("Sales org"), "Edit").await;
    b.wait_for_text("Edit Sales org").await;
    let id = connection["id"].as_str().expect("id");
    assert_eq!(b.fragment().await, format!("/connection/{id}"));
    b.client.refresh().await.expect("reloads");
    b.wait_for_text("Edit Sales org").await;
    // A template's set-up form.
    b.click("//nav", "Automations").await;
    b.click("", "All automations").await;
    b.click(&tile("Create Lead"), "Set up").await;
    b.wait_for_text("Set up Create Lead").await;
    assert_eq!(
        b.fragment().await,
        "/automation-setup/salesforce.create_lead"
    );
    b.client.refresh().await.expect("reloads");
    b.field("Unique name").await;
    // One whose app has no connection says so, and where to make one; an unknown app is named.
    let setup = format!("{}/console#/automation-setup/jira.create_issue", env.api);
    b.open(&setup).await;
    b.wait_for_text("Set up a jira connection first").await;
    b.click("", "All integrations").await;
    b.element(&tile("Jira Cloud")).await;
    b.open(&format!("{}/console#/connection-setup/nonesuch", env.api))
        .await;
    b.flash_saying("not_found: no app 'nonesuch' in the catalogue")
        .await;
    b.wait_for_text("This page cannot be shown.").await;
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_page_answering_late_does_not_replace_the_one_opened_after_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.wait_for_text("No connection yet").await;
    // The run history waits on the ledger, locked, while the admin goes on to the tokens.
    let mut client = env.pool.get().await.expect("a connection");
    let lock = client.transaction().await.expect("a transaction");
    lock.batch_execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("the ledger locked");
    b.click("//nav", "Runs").await;
    env.until_waiting(1).await;
    // Meanwhile the page is marked busy, the connections it still shows about to go.
    let busy = "return document.getElementById('main').getAttribute('aria-busy')";
    assert_eq!(b.eval(busy).await, json!("true"));
    b.click("//nav", "Tokens").await;
    b.element("//h2[normalize-space()='API tokens']").await;
    lock.commit().await.expect("the ledger free again");
    while env.waiting_on_locks().await > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The runs' answer is on its way to the page, which must not show it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.element("//h2[normalize-space()='API tokens']").await;
    assert!(!b.text().await.contains("Every automation's executions"));
    assert_eq!(b.fragment().await, "/tokens");
    assert_eq!(b.eval(busy).await, Value::Null, "Tokens is drawn");
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn a_change_answered_after_its_page_was_left_says_how_it_ended_there() {
    let env = TestEnv::start_with(Options::api_only()).await;
    env.salesforce_connection("Sales org", "s3cret", "s3cret")
        .await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    // Each change writes to the tenant's audit trail, which waits on the tenant's row, locked
    // while the admin goes on to another page.
    let mut client = env.pool.get().await.expect("a connection");
    let lock = client.transaction().await.expect("a transaction");
    lock.batch_execute("SELECT 1 FROM tenants FOR UPDATE")
        .await
        .expect("the tenant locked");
    b.click(&tile("Sales org"), "Delete").await;
    b.accept_dialog(None).await;
    env.until_waiting(1).await;
    b.click("//nav", "Tokens").await;
    b.fill("Token name", "Issued while away").await;
    b.click("", "Issue").await;
    b.wait_until("two changes waiting", async |_| {
        env.waiting_on_locks().await == 2
    })
    .await;
    b.click("//nav", "Runs").await;
    b.element("//h2[normalize-space()='Runs']").await;
    lock.commit().await.expect("the tenant free again");

    // Both done on the server and said over Runs, which stays: the token's secret with it,
    // kept on screen, and working.
    let (said, error) = b
        .flash_saying(r#"Token "Issued while away" issued: copy it now"#)
        .await;
    assert!(!error, "{said}");
    let secret = b.element("//div[@id='flash']//div[@class='secret']").await;
    let token = secret.text().await.expect("the secret");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    b.flash_saying(&token).await;
    let (code, me) = env.call_as(&token, Method::GET, "/v1/me", None).await;
    assert_eq!(code, StatusCode::OK, "{me}");
    let (code, gone) = env.call(Method::GET, "/v1/connections", None).await;
    assert_eq!((code, gone), (StatusCode::OK, json!([])));
    b.element("//h2[normalize-space()='Runs']").await;
    assert_eq!(b.fragment().await, "/runs");
    b.close().await;
    env.stop().await;
}

#[tokio::test]
async fn leaving_a_draft_with_changes_not_saved_asks_first() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.edit_automation("Create lead").await;
    let editor = format!("/editor/{automation}");
    b.fill("Unique name", "Leads from the web").await;

    // Runs, then Back: each asks; the admin stays, the edit and the address kept.
    b.click("//nav", "Runs").await;
    let asked = b.dismiss_dialog().await;
    assert_eq!(asked, r#"Leave without saving the draft of "Create lead"?"#);
    b.client.back().await.expect("back");
    b.dismiss_dialog().await;
    let name = b
        .eval("return document.querySelector('h2').textContent")
        .await;
    assert_eq!(name, "Create lead", "still the editor");
    let typed = b.value("Unique name").await;
    assert_eq!(typed.as_deref(), Some("Leads from the web"));
    assert_eq!(b.fragment().await, editor);
    // The admin leaves: the edit is dropped, the draft as it was.
    b.click("//nav", "Runs").await;
    b.accept_dialog(None).await;
    b.wait_for_text("Every automation's executions").await;
    let draft = get(&env, &format!("/v1/automations/{automation}")).await;
    assert_eq!(draft["name"], "Create lead");

    // Saved, it leaves without a word; a row added is a change too.
    b.client.back().await.expect("back");
    b.fill("Unique name", "Leads from the web").await;
    b.click("", "Save as draft").await;
    b.flash_saying("Draft saved").await;
    b.click("//nav", "Runs").await;
    b.wait_for_text("Every automation's executions").await;
    let draft = get(&env, &format!("/v1/automations/{automation}")).await;
    assert_eq!(draft["name"], "Leads from the web");
    b.client.back().await.expect("back");
    b.click("", "+ Create").await;
    b.click("", "Back").await;
    let asked = b.accept_dialog(None).await;
    assert!(asked.contains("the draft of"), "{asked}");
    b.element(&tile("Leads from the web")).await;
    b.close().await;
    env.stop().await;
}
