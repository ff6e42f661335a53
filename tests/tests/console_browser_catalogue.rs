//! The admin console's catalogues in a real browser (a headless Chromium): the business-domain
//! filter, a menu that can be searched, and the search bar narrow the apps and the automation
//! templates offered, as the API does; the filters stay in the page's address.

use aic_tests::browser::Browser;
use aic_tests::harness::{Options, TestEnv};
use reqwest::{Method, StatusCode};

/// The titles of the tiles shown, once the page is drawn.
async fn tiles(b: &Browser) -> Option<Vec<String>> {
    let shown = b
        .eval(
            "return document.getElementById('main').hasAttribute('aria-busy') ? null \
             : [...document.querySelectorAll('.tile h4')].map((t) => t.textContent)",
        )
        .await;
    serde_json::from_value(shown).expect("titles or null")
}

/// Waits for the tiles shown to be `names`'s, in any order.
async fn until_tiles(b: &Browser, mut names: Vec<String>) {
    names.sort();
    b.wait_until(&format!("the tiles {names:?}"), async |b| {
        let mut shown = tiles(b).await.unwrap_or_default();
        shown.sort();
        shown == names
    })
    .await;
}

/// Selects what the field labelled `label` holds and types `text` over it, then Enter.
async fn retype(b: &Browser, label: &str, text: &str) {
    let keys = format!("\u{E009}a\u{E000}\u{E017}{text}\u{E007}");
    b.field(label).await.send_keys(&keys).await.expect("typed");
}

#[tokio::test]
async fn the_catalogue_is_narrowed_by_a_business_domain_searched_for_and_by_keywords() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let names = async |path: &str| -> Vec<String> {
        let (code, list) = env.call(Method::GET, path, None).await;
        assert_eq!(code, StatusCode::OK, "{list}");
        let list = list.as_array().expect("a list").iter();
        list.map(|a| a["name"].as_str().expect("a name").to_string())
            .collect()
    };
    let (_, domains) = env.call(Method::GET, "/v1/domains", None).await;
    let domain = domains
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["apps"].as_u64() > Some(1))
        .expect("a domain of several apps");
    let (id, name) = (
        domain["id"].as_str().unwrap(),
        domain["name"].as_str().unwrap(),
    );
    let every = names("/v1/apps").await;
    let its = names(&format!("/v1/apps?domain={id}")).await;
    assert!(its.len() > 1 && its.len() < every.len(), "{its:?}");

    let b = Browser::console(&env.api).await;
    b.sign_in(&env.admin_token).await;
    b.click("", "Add a new connection").await;
    until_tiles(&b, every.clone()).await;
    // The menu offers every domain; a name typed whole (in any case) narrows the tiles to its
    // apps, and the address keeps it through a reload.
    let offered = b
        .eval("return [...document.querySelectorAll('datalist option')].map((o) => o.value)")
        .await;
    assert_eq!(
        offered.as_array().map(Vec::len),
        domains.as_array().map(Vec::len)
    );
    retype(&b, "Business domain", &name.to_lowercase()).await;
    until_tiles(&b, its.clone()).await;
    assert_eq!(b.fragment().await, format!("/connections/all?domain={id}"));
    b.client.refresh().await.expect("reloaded");
    until_tiles(&b, its.clone()).await;
    assert_eq!(b.value("Business domain").await.as_deref(), Some(name));

    // A name that is no domain's says so and narrows nothing; keywords narrow within the domain;
    // the field emptied, every domain's apps again.
    retype(&b, "Business domain", "Astrology").await;
    let (said, error) = b
        .flash_saying(r#"No business domain is named "Astrology""#)
        .await;
    assert!(error, "{said}");
    until_tiles(&b, its.clone()).await;
    let keyword = its[0].to_lowercase();
    retype(&b, "Search", &keyword).await;
    let found = names(&format!("/v1/apps?domain={id}&q={keyword}")).await;
    assert!(
        found.contains(&its[0]) && found.len() < its.len(),
        "{found:?}"
    );
    until_tiles(&b, found).await;
    retype(&b, "Search", "").await;
    until_tiles(&b, its).await;
    retype(&b, "Business domain", "").await;
    until_tiles(&b, every).await;

    // The automations' catalogue has the same filter.
    b.click("//nav", "Automations").await;
    b.click("", "All automations").await;
    retype(&b, "Business domain", name).await;
    let templates = names(&format!("/v1/templates?domain={id}")).await;
    until_tiles(&b, templates).await;
    b.close().await;
    env.stop().await;
}
