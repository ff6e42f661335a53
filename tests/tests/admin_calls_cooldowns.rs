//! The control plane's own calls on a saved connection — a draft's test run, a connection test,
//! the field picker — keep to the vendor's "stop" as the workers do: none goes out while a
//! cool-down holds the connection (a 429 saying until when and why, with `Retry-After`), and a
//! vendor's refusal of one is recorded for the whole fleet. An admin may end them early, and
//! moving the connection to another instance ends them with the former's limits.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::Sandbox;
use aic_tests::sandbox::faults::Fault;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Checks the call was held by a cool-down of about `seconds` from now, for `why`.
async fn assert_held(
    env: &TestEnv,
    method: Method,
    path: &str,
    body: Option<Value>,
    seconds: u64,
    why: &str,
) {
    let (status, after, err) = env.call_retry_after(method.clone(), path, body).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "{method} {path}: {err}"
    );
    assert_eq!(err["error"]["code"], "connection_throttled", "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{message}");
    let after = after.expect("a Retry-After header");
    assert!(
        (seconds.saturating_sub(5)..=seconds).contains(&after),
        "Retry-After {after}, the cool-down {seconds} s"
    );
}

#[tokio::test]
async fn a_test_runs_rate_limit_holds_its_channel_for_the_next_calls_and_the_fleet() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let send = env.slack_automation("Limited", "xoxb-limited").await;
    let test = format!("/v1/automations/{send}/test");
    let to = |channel: &str| json!({"parameters": {"channel": channel, "text": "hello"}});
    env.sandbox
        .state
        .faults
        .push([Fault::RateLimited { retry_after: 60 }]);
    let (status, tested) = env.call(Method::POST, &test, Some(to("#general"))).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["ok"], false, "{tested}");
    assert_eq!(tested["error"]["vendor"]["code"], "ratelimited", "{tested}");

    // Recorded where the workers read it: the channel's cool-down, not the connection's.
    let (_, conns) = env.call(Method::GET, "/v1/connections", None).await;
    let conn = &conns[0];
    assert!(conn["throttled_until"].is_null(), "{conns}");
    assert_eq!(conn["cooldowns"][0]["scope"], "channel:#general", "{conns}");
    let reason = conn["cooldowns"][0]["reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        "the vendor's rate limit (HTTP 429, Retry-After 60 s) on channel:#general"
    );

    // SREs see it: the control plane counts the connections a cool-down holds.
    assert_eq!(
        env.control_plane_sample("aic_connections_cooling_down")
            .await,
        "1"
    );
    assert_eq!(
        env.control_plane_sample(r#"aic_connections{status="untested"}"#)
            .await,
        "1"
    );

    // The same channel is held without a call; another channel and the connection test go.
    let why = "Retry-After 60 s) on channel:#general";
    assert_held(&env, Method::POST, &test, Some(to("#general")), 60, why).await;
    assert_eq!(env.sandbox.requests_to("chat.postMessage").len(), 1);
    let (status, other) = env.call(Method::POST, &test, Some(to("#alerts"))).await;
    assert_eq!(
        (status.as_u16(), &other["ok"]),
        (200, &json!(true)),
        "{other}"
    );
    let conn_test = format!("/v1/connections/{}/test", conn["id"].as_str().expect("id"));
    let (status, checked) = env.call(Method::POST, &conn_test, None).await;
    assert_eq!(
        (status.as_u16(), &checked["ok"]),
        (200, &json!(true)),
        "{checked}"
    );
    assert_eq!(env.sandbox.requests_to("chat.postMessage").len(), 2);
    env.stop().await;
}

#[tokio::test]
async fn a_spent_quota_found_by_a_connection_test_holds_every_call_on_the_connection() {
    let env = TestEnv::start_with(Options::default()).await;
    let automation = env.lead_automation().await;
    let (_, conns) = env.call(Method::GET, "/v1/connections", None).await;
    let conn = conns[0]["id"].as_str().expect("id").to_string();
    env.sandbox
        .state
        .salesforce
        .daily_limit
        .store(0, Ordering::SeqCst);

    let conn_test = format!("/v1/connections/{conn}/test");
    let (status, checked) = env.call(Method::POST, &conn_test, None).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(
        checked["vendor_code"], "REQUEST_LIMIT_EXCEEDED",
        "{checked}"
    );
    let (_, view) = env
        .call(Method::GET, &format!("/v1/connections/{conn}"), None)
        .await;
    let reason = view["throttle_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the vendor's API request quota is spent (REQUEST_LIMIT_EXCEEDED"),
        "{view}"
    );
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(view["throttled_until"].clone()).expect("until");
    let left = (until - chrono::Utc::now()).num_seconds();
    assert!((890..=900).contains(&left), "held {left} s");
    let data_calls = || env.sandbox.requests_to("/services/data/").len();
    let called = data_calls();

    // Every call the control plane would make on the connection is held, none sent.
    let why = "quota is spent";
    assert_held(&env, Method::POST, &conn_test, None, 900, why).await;
    let params = json!({"parameters": {"LastName": "Lovelace", "Company": "Engines"}});
    let test = format!("/v1/automations/{automation}/test");
    assert_held(&env, Method::POST, &test, Some(params.clone()), 900, why).await;
    let fields = format!("/v1/automations/{automation}/fields");
    assert_held(&env, Method::GET, &fields, None, 900, why).await;
    assert_eq!(data_calls(), called, "a held call went out");

    // The workers hold it too: 900 s is past the execution's retry budget, so it fails at once
    // naming the cool-down, without a call.
    let id = env.enqueue(&automation, params["parameters"].clone()).await;
    let done = env.wait_final(&id).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["result"]["error"]["code"].as_str()
        ),
        (Some("failed"), Some("connection_throttled")),
        "{done}"
    );
    assert_eq!(data_calls(), called, "the worker called");
    env.stop().await;
}

/// An admin who knows better (the vendor's limit raised) ends the cool-downs: the next test run
/// goes, and a worker that keeps a channel's hold in memory while the connection is busy on
/// other channels drops it at its next lease renewal; the trail says what was ended, and
/// ending none records nothing.
#[tokio::test]
async fn an_admin_ends_the_cool_downs_and_the_workers_follow() {
    let env = TestEnv::start_with(Options::default()).await;
    env.sandbox.state.slack.add_token("xoxb-t");
    let body = json!({"bot_token": "xoxb-t"});
    let conn = env.connection("Slack", "slack", "bot_token", body).await;
    let conn = conn["id"].as_str().expect("id").to_string();
    let fails = env
        .automation(
            json!({"template": "slack.send_message", "connection_id": conn,
            "name": "Fails fast", "retry": {"on_throttle": "fail"}}),
        )
        .await;
    let general = json!({"channel": "#general", "text": "hello"});
    env.sandbox
        .state
        .faults
        .push([Fault::RateLimited { retry_after: 60 }]);
    let test = format!("/v1/automations/{fails}/test");
    let (_, tested) = env
        .call(Method::POST, &test, Some(json!({"parameters": general})))
        .await;
    assert_eq!(tested["ok"], false, "{tested}");

    // #alerts keeps the connection busy (a call under way at every renewal), so the worker
    // keeps its state, #general's hold included, rather than drop it as idle.
    env.sandbox.set_latency(Duration::from_millis(150));
    // Slack takes about a message a second per channel after a burst: a burst as large as the
    // test's messages to #alerts.
    env.sandbox.state.slack.burst.store(1_000, Ordering::SeqCst);
    let stop = AtomicBool::new(false);
    let busy = keep_busy(&env, &fails, &stop);
    let ended = async {
        let held = env.run(&fails, general.clone()).await;
        assert_eq!(
            held["result"]["error"]["code"], "connection_throttled",
            "{held}"
        );
        let ended = end_cool_downs(&env, &conn).await;
        let (_, tested) = env
            .call(Method::POST, &test, Some(json!({"parameters": general})))
            .await;
        assert_eq!(tested["ok"], true, "{tested}");
        let followed = runs_again(&env, &fails, &general, ended).await;
        println!("the worker followed the admin's end of the cool-down after {followed:?}");
        stop.store(true, Ordering::SeqCst);
    };
    let (sent, ()) = tokio::join!(busy, ended);
    for id in &sent {
        let done = env.wait_final(id).await;
        assert_eq!(
            done["status"], "succeeded",
            "#alerts was never held: {done}"
        );
    }

    assert_one_clearing(&env, &conn).await;
    env.stop().await;
}

/// Enqueues a message to #alerts every 100 ms until `stop`; their ids.
async fn keep_busy(env: &TestEnv, automation: &str, stop: &AtomicBool) -> Vec<String> {
    let mut sent = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let alert = json!({"channel": "#alerts", "text": "busy"});
        sent.push(env.enqueue(automation, alert).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

/// Runs `automation` (failing fast on a cool-down) with `message` until it succeeds, within
/// 10 s of `since`; how long after `since` it did.
async fn runs_again(env: &TestEnv, automation: &str, message: &Value, since: Instant) -> Duration {
    loop {
        let run = env.run(automation, message.clone()).await;
        if run["status"] == "succeeded" {
            return since.elapsed();
        }
        assert_eq!(
            run["result"]["error"]["code"], "connection_throttled",
            "{run}"
        );
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the worker still holds: {run}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Ending the cool-downs again, none held, answers the connection and records nothing: the
/// trail holds the one clearing of #general.
async fn assert_one_clearing(env: &TestEnv, conn: &str) {
    let clear = format!("/v1/connections/{conn}/cooldowns");
    let (_, again) = env.call(Method::DELETE, &clear, None).await;
    assert_eq!(again["id"], json!(conn));
    let (_, events) = env
        .call(
            Method::GET,
            "/v1/audit-events?action=connection.cooldowns_cleared",
            None,
        )
        .await;
    let events = events["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "ending none records nothing: {events:?}");
    assert_eq!(
        events[0]["detail"],
        json!({"throttled_until": null, "scopes": ["channel:#general"]})
    );
}

/// Ends the connection's cool-downs as an admin (a viewer may not); when it did.
async fn end_cool_downs(env: &TestEnv, conn: &str) -> Instant {
    let viewer = env.token(Role::Viewer).await;
    let clear = format!("/v1/connections/{conn}/cooldowns");
    let (status, _) = env.call_as(&viewer, Method::DELETE, &clear, None).await;
    assert_eq!(status, 403);
    let (status, view) = env.call(Method::DELETE, &clear, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["cooldowns"], json!([]), "{view}");
    assert_eq!(
        env.control_plane_sample("aic_connections_cooling_down")
            .await,
        "0"
    );
    Instant::now()
}

/// A connection moved to another instance (another workspace, org or site) leaves the former's
/// cool-downs behind — the connection's and its channels', in the database and in the workers'
/// memory — and a refusal from the former still under way when it moves holds nothing.
#[tokio::test]
async fn moving_a_connection_to_another_instance_ends_the_former_ones_cool_downs() {
    let env = TestEnv::start_with(Options::default()).await;
    let other = Sandbox::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("a second sandbox");
    for s in [&env.sandbox, &other] {
        s.state.slack.add_token("xoxb-moved");
    }
    let body = json!({"bot_token": "xoxb-moved"});
    let conn = env.connection("Moved", "slack", "bot_token", body).await;
    let conn = conn["id"].as_str().expect("id").to_string();
    let fails = env
        .automation(
            json!({"template": "slack.send_message", "connection_id": conn,
            "name": "Once", "retry": {"on_throttle": "fail", "max_attempts": 1, "cap_ms": 60000}}),
        )
        .await;
    let general = json!({"channel": "#general", "text": "hello"});

    // The first instance holds #general (a worker's call refused: the worker holds it) and the
    // whole connection (a connection test refused).
    let limited = || {
        env.sandbox
            .state
            .faults
            .push([Fault::RateLimited { retry_after: 60 }])
    };
    limited();
    let refused = env.run(&fails, general.clone()).await;
    assert_eq!(refused["result"]["attempts"], 1, "{refused}");
    let held = env.run(&fails, general.clone()).await;
    assert_eq!(
        held["result"]["error"]["code"], "connection_throttled",
        "{held}"
    );
    limited();
    let (_, tested) = env
        .call(Method::POST, &format!("/v1/connections/{conn}/test"), None)
        .await;
    assert_eq!(tested["vendor_code"], "ratelimited", "{tested}");

    let moved = move_to(&env, &conn, &other).await;
    assert!(moved["throttled_until"].is_null(), "{moved}");
    assert_eq!(moved["cooldowns"], json!([]), "{moved}");
    let trail = last_reauthorisation(&env).await;
    assert_eq!(
        trail["cooldowns_ended"]["scopes"],
        json!(["channel:#general"]),
        "{trail}"
    );
    assert!(
        trail["cooldowns_ended"]["throttled_until"].is_string(),
        "{trail}"
    );
    // The worker drops its own hold of #general (at its next lease renewal, as the admin's
    // clearing stamps it: see the test above; here, idle, as it gives its lease back).
    let followed = runs_again(&env, &fails, &general, Instant::now()).await;
    println!("the worker left the former instance's cool-downs after {followed:?}");
    assert_eq!(other.requests_to("chat.postMessage").len(), 1);

    // A call under way on the second instance when the connection moves back, refused after
    // the move (4 s: far longer than a move takes, even on a loaded machine): nothing
    // recorded, nothing held.
    other.set_latency(Duration::from_secs(4));
    other
        .state
        .faults
        .push([Fault::RateLimited { retry_after: 60 }]);
    let late = env.enqueue(&fails, general.clone()).await;
    other.until_requests_to("chat.postMessage", 2).await;
    move_to(&env, &conn, &env.sandbox).await;
    let late = env.wait_final(&late).await;
    assert_eq!(late["status"], "failed", "{late}");
    let (_, view) = env
        .call(Method::GET, &format!("/v1/connections/{conn}"), None)
        .await;
    assert!(view["throttled_until"].is_null(), "{view}");
    assert_eq!(view["cooldowns"], json!([]), "{view}");
    let sent = env.run(&fails, general).await;
    assert_eq!(
        sent["status"], "succeeded",
        "held by the former's refusal: {sent}"
    );
    env.stop().await;
}

/// Moves `conn` to `to`'s instance; the connection as answered.
async fn move_to(env: &TestEnv, conn: &str, to: &Sandbox) -> Value {
    let path = format!("/v1/connections/{conn}");
    let (status, moved) = env
        .call(Method::PATCH, &path, Some(json!({"domain": to.url()})))
        .await;
    assert_eq!(status, 200, "{moved}");
    moved
}

/// The detail of the latest `connection.reauthorised` audit event.
async fn last_reauthorisation(env: &TestEnv) -> Value {
    let (_, events) = env
        .call(
            Method::GET,
            "/v1/audit-events?action=connection.reauthorised",
            None,
        )
        .await;
    events["events"][0]["detail"].clone()
}
