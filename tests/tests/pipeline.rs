//! Control plane → RabbitMQ → worker → sandbox → result, for Salesforce Create Lead; and the
//! worker's vendor connections kept open for the next call, up to
//! `AIC_WORKER_VENDOR_IDLE_CONNECTIONS` per host, and spread past one HTTP/2 connection's
//! streams.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn a_lead_enqueued_over_http_is_created_in_salesforce_and_its_id_recorded() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let mut results = env.listen(&env.names.results_exchange, "#").await;

    let execution = env
        .enqueue(&automation, json!({"LastName": "Curie", "Company": "Radium Ltd", "Email": "marie@radium.example", "NumberOfEmployees": "12"}))
        .await;
    let done = env.wait_final(&execution).await;

    assert_eq!(done["status"], "succeeded", "{done}");
    let lead_id = done["result"]["output"]["id"]
        .as_str()
        .expect("lead id")
        .to_string();
    assert!(
        lead_id.starts_with("00Q") && lead_id.len() == 18,
        "{lead_id}"
    );
    assert_eq!(done["result"]["attempts"], 1);
    assert!(done["version_id"].is_string());

    // The exact request Salesforce received.
    let creates = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(creates.len(), 1);
    let req = &creates[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/services/data/v62.0/sobjects/Lead/");
    assert!(
        req.headers["authorization"].starts_with("Bearer 00D"),
        "bearer token sent"
    );
    assert!(req.headers["content-type"].starts_with("application/json"));
    assert_eq!(
        req.json(),
        json!({"LastName": "Curie", "Company": "Radium Ltd", "Email": "marie@radium.example", "NumberOfEmployees": 12})
    );
    let stored = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, lead_id);

    // The result event, on the results exchange, routed by tenant and status.
    let event = results
        .next(Duration::from_secs(10))
        .await
        .expect("a result event");
    assert_eq!(
        event.routing_key.as_str(),
        format!("{}.succeeded", env.tenant)
    );
    let body: serde_json::Value = serde_json::from_slice(&event.data).expect("json");
    assert_eq!(body["execution_id"], execution.as_str());
    assert_eq!(body["output"]["id"], lead_id.as_str());
    assert_eq!(
        event.properties.kind().as_ref().map(|s| s.as_str()),
        Some("aic.execution_result.v1")
    );

    // Metrics count it.
    let metrics = env.metrics().await;
    assert!(
        metrics.contains(
            r#"aic_executions_total{action="create_lead",app="salesforce",outcome="succeeded"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"aic_execution_duration_seconds_count{app="salesforce",outcome="succeeded"} 1"#
        ),
        "{metrics}"
    );
    // One vendor call timed (the token request is not one), and the ledger's statements for
    // this one execution: begin (which marked it) and finish once each; the mark twice, as the
    // worker's first call on a connection asks the fleet for its share first, and waits for
    // that with the mark taken back, then marks again.
    assert!(
        metrics.contains(r#"aic_vendor_request_duration_seconds_count{app="salesforce"} 1"#),
        "{metrics}"
    );
    for (statement, times) in [("begin", 1), ("mark", 2), ("finish", 1)] {
        for line in [
            format!(r#"aic_ledger_batch_executions_sum{{statement="{statement}"}} {times}"#),
            format!(
                r#"aic_ledger_batch_duration_seconds_count{{statement="{statement}"}} {times}"#
            ),
        ] {
            assert!(metrics.contains(&line), "no `{line}` in {metrics}");
        }
    }
    // Its result published once, and the wait for the broker's confirm timed.
    assert!(
        metrics.contains("aic_result_publish_duration_seconds_count 1"),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test]
async fn the_token_is_fetched_once_and_refreshed_once_after_the_session_expires() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let org = &env.sandbox.state.salesforce;
    let before = org.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..5 {
        let e = env
            .enqueue(
                &automation,
                json!({"LastName": format!("L{i}"), "Company": "C"}),
            )
            .await;
        assert_eq!(env.wait_final(&e).await["status"], "succeeded");
    }
    let after_five = org.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after_five - before, 1, "one token for five executions");

    org.expire_tokens();
    let e = env
        .enqueue(
            &automation,
            json!({"LastName": "After expiry", "Company": "C"}),
        )
        .await;
    let done = env.wait_final(&e).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["attempts"], 2,
        "one refused call, one after refresh"
    );
    assert_eq!(
        org.token_requests.load(std::sync::atomic::Ordering::SeqCst) - after_five,
        1
    );
    let refused: Vec<_> = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(refused.len(), 7);
    env.stop().await;
}

#[tokio::test]
async fn the_api_describes_itself_and_reports_readiness() {
    let env = TestEnv::start().await;
    let (status, doc) = env.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/automations/{id}/executions"]["post"].is_object());
    let (status, ready) = env.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["postgres"], true);
    assert_eq!(ready["rabbitmq"], true);
    let worker = reqwest::get(format!(
        "http://{}/readyz",
        env.worker_admin.expect("worker")
    ))
    .await
    .expect("answers");
    assert_eq!(worker.status(), 200);
    env.stop().await;
}

#[tokio::test]
async fn publishing_announces_the_immutable_definition_on_the_broker() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let conn = env.salesforce_connection("Org", "pw", "pw").await;
    let params = json!([
        {"name": "last", "type": "string", "target": "LastName", "required": true},
        {"name": "company", "type": "string", "target": "Company", "required": true},
        {"name": "revenue", "type": "number", "target": "AnnualRevenue", "required": false}
    ]);
    let (status, created) = env
        .call(Method::POST, "/v1/automations", Some(json!({"template": "salesforce.create_lead", "connection_id": conn["id"], "name": "Mapped", "parameters": params})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let mut events = env
        .listen(&env.names.definitions_exchange, "definition.published")
        .await;
    let (status, version) = env
        .call(Method::POST, &format!("/v1/automations/{id}/publish"), None)
        .await;
    assert_eq!(status, 201, "{version}");

    let event = events
        .next_json(Duration::from_secs(10))
        .await
        .expect("a definition event");
    assert_eq!(event["version"], 1);
    assert_eq!(event["automation_id"], id);
    assert_eq!(event["version_id"], version["id"]);
    assert_eq!(event["version_number"], 1);
    let def = &event["definition"];
    assert_eq!(
        (
            def["app"].as_str(),
            def["action"].as_str(),
            def["method"].as_str()
        ),
        (Some("salesforce"), Some("create_lead"), Some("POST"))
    );
    assert_eq!(def["path"], "/services/data/v62.0/sobjects/Lead/");
    assert_eq!(def["parameters"][2]["target"], "AnnualRevenue");

    // A table that drops a field Salesforce requires is refused, naming it.
    let (status, err) = env
        .call(Method::POST, "/v1/automations", Some(json!({"template": "salesforce.create_lead", "connection_id": conn["id"], "name": "Broken",
            "parameters": [{"name": "last", "type": "string", "target": "LastName", "required": true}]})))
        .await;
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'Company' is required by the vendor"),
        "{err}"
    );
    env.stop().await;
}

/// Runs `calls` Create Lead executions one after another through a worker that keeps `idle`
/// connections per host; returns how many TCP connections the sandbox saw them on.
async fn connections_for(idle: usize, calls: usize) -> usize {
    let env = TestEnv::start_with(Options {
        vendor_idle_connections: idle,
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    for i in 0..calls {
        let done = env
            .run(
                &lead,
                json!({"LastName": format!("R{i}"), "Company": "Acme"}),
            )
            .await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let creates = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(creates.len(), calls);
    let peers: HashSet<_> = creates
        .iter()
        .map(|r| r.peer.expect("the sandbox records the caller's address"))
        .collect();
    env.stop().await;
    peers.len()
}

#[tokio::test]
async fn calls_in_sequence_reuse_one_vendor_connection() {
    assert_eq!(
        connections_for(aic_core::vendor::IDLE_CONNECTIONS_PER_HOST, 5).await,
        1
    );
}

#[tokio::test]
async fn a_worker_that_keeps_no_idle_connection_opens_one_per_call() {
    assert_eq!(connections_for(0, 5).await, 5);
}

/// Over HTTP/2 one connection would carry every call to a host, and the server holds calls
/// past its stream limit waiting in it (the sandbox's limit: 200, hyper's default). The worker
/// spreads an HTTP/2 host's calls over connections of `AIC_WORKER_VENDOR_HTTP2_STREAMS` calls
/// each (100 here): 300 calls of 3 s reach the vendor together, over three connections or more
/// (on one connection at most 200 were at the vendor at once). The first wave too: the worker
/// learns the protocol from the token request, before its first call (learning it from the
/// first answer sent the whole wave on one connection).
#[tokio::test]
async fn calls_to_an_http2_vendor_spread_over_connections_past_its_stream_limit() {
    let env = TestEnv::start_with(Options {
        prefetch: 300,
        vendor_http2_streams: Some(100),
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    env.cap_connections(300).await;
    env.sandbox.set_latency(Duration::from_secs(3));
    let ids = futures_util::future::join_all((0..300).map(|i| {
        env.enqueue(
            &lead,
            json!({"LastName": format!("H{i}"), "Company": "Acme"}),
        )
    }))
    .await;
    for id in &ids {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let creates = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(creates.len(), 300);
    let versions: HashSet<_> = creates.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(
        versions,
        HashSet::from(["HTTP/2.0"]),
        "every call over HTTP/2"
    );
    let peers: HashSet<_> = creates
        .iter()
        .map(|r| r.peer.expect("the sandbox records the caller's address"))
        .collect();
    let max = env.sandbox.state.faults.max_in_flight();
    println!(
        "300 calls of 3 s over HTTP/2: at most {max} at once at the vendor, over {} connections",
        peers.len()
    );
    assert!(
        max > 200,
        "the vendor saw at most {max} calls at once: the rest waited for a stream"
    );
    assert!(peers.len() >= 3, "{} connections", peers.len());
    env.stop().await;
}

/// A running execution shows the version it runs, whether the API queued its row or the
/// request came straight over AMQP (the worker then inserts the row): the vendor answers in
/// 800 ms, and the row is read while the call is out. (The version was recorded only by a
/// separate mark or at the end, so calls that went at once ran with none.)
#[tokio::test]
async fn a_running_execution_shows_the_version_it_runs() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let (status, detail) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    assert_eq!(status, 200, "{detail}");
    let version = detail["published_version"]["id"].clone();
    assert!(version.is_string(), "{detail}");
    // A first call, so that the worker holds its share of the connection: the calls below go
    // at once (a call that waits for its share takes the mark back and sets it again later,
    // with the version).
    let first = env
        .run(&automation, json!({"LastName": "First", "Company": "Acme"}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    env.sandbox.set_latency(Duration::from_millis(800));
    let queued = env
        .enqueue(
            &automation,
            json!({"LastName": "Queued", "Company": "Acme"}),
        )
        .await;
    let (direct, body) = env.request(
        &automation,
        json!({"LastName": "Direct", "Company": "Acme"}),
    );
    env.publish_raw(
        &body,
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let ids = [&queued, &direct];
    let mut running = [None, None];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running.iter().any(Option::is_none) {
        for (id, seen) in ids.iter().zip(running.iter_mut()) {
            if seen.is_some() {
                continue;
            }
            let (status, body) = env
                .call(Method::GET, &format!("/v1/executions/{id}"), None)
                .await;
            assert!(
                std::time::Instant::now() < deadline && body["status"] != "succeeded",
                "never seen running: {body}"
            );
            if status == 200 && body["status"] == "running" {
                seen.get_or_insert(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (id, seen) in ids.iter().zip(running) {
        let seen = seen.expect("seen running");
        assert_eq!(seen["version_id"], version, "{seen}");
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["version_id"], version, "{done}");
    }
    env.stop().await;
}
