//! OpenTelemetry traces: the real `aic-worker` binary, given an OTLP endpoint, exports each
//! execution as a trace that continues the publisher's (W3C `traceparent` in the request's
//! headers), with a span per step, and hands the trace on in the result's headers. The
//! collector here is a real OTLP/HTTP receiver decoding the protobuf the worker sends. A
//! request enqueued over HTTP with a `traceparent` header is traced the same way.

use aic_proto::topology::EXECUTION_REQUEST_TYPE;
use aic_tests::harness::{Options, TestEnv, sigterm};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Collector {
    /// Every export body as received.
    bodies: Mutex<Vec<Vec<u8>>>,
    /// `(service.name, span)`.
    spans: Mutex<Vec<(String, Span)>>,
}

async fn receive(State(c): State<Arc<Collector>>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body.clone()) else {
        return StatusCode::BAD_REQUEST;
    };
    c.bodies.lock().expect("lock").push(body.to_vec());
    let mut spans = c.spans.lock().expect("lock");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.value.clone())
            .map(|v| match v {
                Any::StringValue(s) => s,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    StatusCode::OK
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
        .map(|v| match v {
            Any::StringValue(s) => s,
            Any::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

/// The spans of `trace_id` by name, once every one of `wanted` has arrived (the batch exporter
/// sends them in its next rounds).
async fn spans_of(
    collector: &Collector,
    trace_id: &str,
    wanted: &[&str],
) -> HashMap<String, (String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: HashMap<String, (String, Span)> = collector
            .spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace_id)
            .map(|(svc, s)| (s.name.clone(), (svc.clone(), s.clone())))
            .collect();
        if wanted.iter().all(|w| got.contains_key(*w)) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "spans of trace {trace_id} received so far: {:?}",
            got.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_execution_continues_the_publishers_trace_and_hands_it_on_with_its_result() {
    let collector = Arc::new(Collector::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(collector.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let mut worker = env.spawn_worker_process_with(
        16,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );

    // A flow's trace: its id and the span that published the request.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let publisher_span = "00f067aa0ba902b7";
    let mut replies = env.listen("", "").await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(),
        "automation_id": automation, "parameters": {"LastName": "Traced", "Company": "Acme"}})
    .to_string();
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(format!(
            "00-{trace_id}-{publisher_span}-01"
        ))),
    );
    let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(replies.queue.as_str().into())
        .with_headers(headers);
    env.publish_raw(body.as_bytes(), props).await;
    let reply = replies
        .next(Duration::from_secs(30))
        .await
        .expect("a result within 30 s");
    let result: serde_json::Value = serde_json::from_slice(&reply.data).expect("json");
    assert_eq!(result["status"], "succeeded", "{result}");
    let handed_on = match reply
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent"))
    {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("the result carries no traceparent: {other:?}"),
    };
    let parts: Vec<&str> = handed_on.split('-').collect();
    assert_eq!(
        (parts.len(), parts[1]),
        (4, trace_id),
        "the result continues the publisher's trace: {handed_on}"
    );

    let wanted = [
        "execution",
        "ledger.begin",
        "vendor.call",
        "ledger.finish",
        "result.publish",
    ];
    let spans = spans_of(&collector, trace_id, &wanted).await;
    let (service, execution) = &spans["execution"];
    println!(
        "trace {trace_id}: {} spans from {service}; the result hands on {handed_on}",
        spans.len()
    );
    assert_eq!(service, "aic-worker");
    assert_eq!(
        hex(&execution.parent_span_id),
        publisher_span,
        "the execution span's parent is the publisher's span"
    );
    assert_eq!(
        attribute(execution, "execution").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(attribute(execution, "status").as_deref(), Some("succeeded"));
    // SpanKind::Consumer is 5, SpanKind::Client 3 in OTLP.
    assert_eq!(execution.kind, 5);
    for step in &wanted[1..] {
        assert_eq!(
            spans[*step].1.parent_span_id, execution.span_id,
            "{step} is a step of the execution"
        );
    }
    let call = &spans["vendor.call"].1;
    assert_eq!(call.kind, 3);
    assert_eq!(attribute(call, "app").as_deref(), Some("salesforce"));
    assert_eq!(
        attribute(call, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(attribute(call, "attempts").as_deref(), Some("1"));
    assert_eq!(
        parts[2],
        hex(&spans["result.publish"].1.span_id),
        "the result's traceparent names the span that published it"
    );

    // No credential travels with the traces: not the connection's secret, not the token.
    let sent = &env.sandbox.requests_to("/sobjects/Lead/")[0];
    let bearer = sent.headers["authorization"]
        .strip_prefix("Bearer ")
        .expect("a bearer token")
        .to_string();
    for body in collector.bodies.lock().expect("lock").iter() {
        let text = String::from_utf8_lossy(body);
        for secret in ["s3cret-value", bearer.as_str()] {
            assert!(
                !text.contains(secret),
                "a credential was exported with the spans"
            );
        }
    }

    // An HTTP caller (ActionBot's synchronous call) with its own trace: the control plane
    // passes the trace context on in the request it enqueues, and the worker continues it.
    let http_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v1/automations/{automation}/executions",
            env.api
        ))
        .bearer_auth(&env.admin_token)
        .header("traceparent", format!("00-{http_trace}-{caller_span}-01"))
        .header("tracestate", "vendor=opaque")
        .json(&json!({"parameters": {"LastName": "Bot", "Company": "Acme"}, "wait_ms": 20000}))
        .send()
        .await
        .expect("control plane answers");
    let answer: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let spans = spans_of(&collector, http_trace, &["execution", "vendor.call"]).await;
    assert_eq!(
        hex(&spans["execution"].1.parent_span_id),
        caller_span,
        "the worker continues the HTTP caller's trace"
    );
    assert_eq!(
        spans["execution"].1.trace_state, "vendor=opaque",
        "tracestate travels with it"
    );

    let _ = worker.kill();
    let _ = worker.wait();
    env.stop().await;
}

/// A collector that takes the connection and never answers must not hold a stopping worker for
/// the exporter's whole timeout: spans still unsent get a short, bounded flush, then the worker
/// exits 0 as usual.
#[tokio::test]
async fn a_collector_that_never_answers_does_not_hold_up_the_workers_exit() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    // Accepts and holds every connection, reading nothing, answering nothing.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let automation = env.lead_automation().await;
    let mut worker = env.spawn_worker_process_with(
        8,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // Without the bound on the final flush, the exit would wait for this.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            // Spans stay queued until the exit's flush.
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    );
    let done = env
        .run(
            &automation,
            json!({"LastName": "Unflushed", "Company": "Acme"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let signalled = Instant::now();
    assert!(sigterm(&worker));
    let status = loop {
        if let Some(status) = worker.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "the worker is still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = signalled.elapsed();
    println!("SIGTERM with unsent spans and a silent collector: exit {status} after {took:?}");
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(4),
        "the final flush held the exit for {took:?}"
    );
    env.stop().await;
}
