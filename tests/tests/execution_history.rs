//! An automation's run history over the API: newest first, filtered by status, paged without
//! skipping or repeating an execution, and still readable once the automation is deleted.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

/// The ids of a page, and its `next`.
fn page(body: &Value) -> (Vec<String>, Option<String>) {
    let ids = body["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    (ids, body["next"].as_str().map(str::to_string))
}

#[tokio::test]
async fn the_run_history_pages_newest_first_and_filters_by_status() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let history = format!("/v1/automations/{automation}/executions");
    let mut ran = Vec::new();
    for i in 0..5 {
        // Every third one has a blank company, which Salesforce refuses.
        let company = if i % 3 == 2 { "" } else { "Engines" };
        let id = env
            .enqueue(
                &automation,
                json!({"LastName": format!("L{i}"), "Company": company}),
            )
            .await;
        env.wait_final(&id).await;
        ran.push(id);
    }
    ran.reverse(); // newest first

    let (status, all) = env.call(Method::GET, &history, None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(page(&all), (ran.clone(), None));
    let mut walked = Vec::new();
    let mut next = None;
    loop {
        let path = match &next {
            Some(after) => format!("{history}?limit=2&after={after}"),
            None => format!("{history}?limit=2"),
        };
        let (status, body) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let (ids, more) = page(&body);
        assert!(ids.len() <= 2, "{body}");
        walked.extend(ids);
        next = more;
        if next.is_none() {
            break;
        }
    }
    assert_eq!(
        walked, ran,
        "pages of two, in order, none skipped or repeated"
    );

    let (_, failed) = env
        .call(Method::GET, &format!("{history}?status=failed"), None)
        .await;
    assert_eq!(page(&failed).0, vec![ran[2].clone()], "{failed}");
    assert_eq!(
        failed["executions"][0]["result"]["error"]["code"],
        "vendor_rejected"
    );
    let (_, succeeded) = env
        .call(Method::GET, &format!("{history}?status=succeeded"), None)
        .await;
    assert_eq!(page(&succeeded).0.len(), 4, "{succeeded}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("status=done", "status"),
        ("after=yesterday", "after"),
    ] {
        env.assert_refused(
            Method::GET,
            &format!("{history}?{query}"),
            None,
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    let unknown = format!("/v1/automations/{}/executions", uuid::Uuid::now_v7());
    assert_eq!(env.call(Method::GET, &unknown, None).await.0, 404);

    // Deleting the automation leaves its history readable.
    env.call(
        Method::DELETE,
        &format!("/v1/automations/{automation}"),
        None,
    )
    .await;
    let (status, kept) = env.call(Method::GET, &history, None).await;
    assert_eq!((status.as_u16(), page(&kept).0.len()), (200, 5), "{kept}");
    env.stop().await;
}
