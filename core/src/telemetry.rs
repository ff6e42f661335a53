//! Logging and tracing set-up for both binaries: structured `tracing` events, JSON or
//! human-readable, and — when an OTLP endpoint is configured — the same spans exported as
//! OpenTelemetry traces, continued from and handed on through AMQP message headers.
//!
//! Traces follow the OpenTelemetry SDK's own environment variables: nothing is exported unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and
//! `OTEL_SDK_DISABLED=true` turns export off; `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
//! choose the sampler (default: follow the caller's decision, sample every new trace), and
//! `OTEL_BSP_*` tune the batch exporter. Export is OTLP over HTTP with protobuf bodies.

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// How long the spans not yet exported may hold up the exit: a collector that does not answer
/// must not keep a stopping worker past its grace period for long.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            eprintln!("trace export did not flush on shutdown: {e}");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the environment asks for traces to be exported.
pub fn traces_configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim() == "true");
    !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn tracer_provider(service: &'static str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the global subscriber, and panics reported through it. `RUST_LOG` filters (default
/// `info`); `json` selects JSON lines. Keep the returned guard for the life of the process.
pub fn init(service: &'static str, json: bool) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, trace_error) = if traces_configured() {
        match tracer_provider(service) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    // Traces have their own filter: `RUST_LOG=warn` quiets the logs, not the traces. Without an
    // exporter no layer asks for the spans below the log level, so they cost nothing.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(Targets::new().with_targets([
                ("aic_worker", Level::INFO),
                ("aic_core", Level::INFO),
                ("aic_control_plane", Level::INFO),
            ]))
    });
    // Colour only for a person at a terminal: files and collectors get plain text.
    let ansi = std::io::stdout().is_terminal();
    let registry = tracing_subscriber::registry().with(otel);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_target(true)
                    .with_filter(filter),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_ansi(ansi)
                    .with_filter(filter),
            )
            .try_init()
    };
    if result.is_ok() {
        crate::panics::report_through_tracing();
        tracing::info!(
            service,
            traces = provider.is_some(),
            "telemetry initialised"
        );
        if let Some(e) = trace_error {
            tracing::error!(error = %e, "the OTLP trace exporter could not be built; traces are off");
        }
    }
    Telemetry { provider }
}

struct Headers<'a>(&'a FieldTable);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut FieldTable);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

/// Makes `span` continue the W3C trace context (`traceparent`, `tracestate`) carried in an AMQP
/// message's headers, so that a flow's or ActionBot's trace goes on through the worker. A
/// message without one (or with an unreadable one) starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: Option<&FieldTable>) {
    let Some(headers) = headers.filter(|h| h.inner().contains_key("traceparent")) else {
        return;
    };
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    // Only fails when the span is disabled or already started; either way there is nothing to
    // continue.
    let _ = span.set_parent(cx);
}

/// Writes `span`'s trace context into `headers` (`traceparent`, and `tracestate` when set), so
/// that whoever consumes the message can continue the trace. Writes nothing while no trace is
/// exported.
pub fn hand_on(span: &tracing::Span, headers: &mut FieldTable) {
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
}

/// The trace context `headers` carry (`traceparent`, `tracestate`), as text to keep beside a
/// request until it is published again ([`trace_headers`]).
pub fn trace_text(headers: &FieldTable) -> (Option<String>, Option<String>) {
    let h = Headers(headers);
    let text = |name| h.get(name).map(str::to_string);
    (text("traceparent"), text("tracestate"))
}

/// The headers carrying a trace context kept as text ([`trace_text`]): none without a
/// `traceparent`.
pub fn trace_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> FieldTable {
    let mut headers = FieldTable::default();
    let Some(parent) = traceparent else {
        return headers;
    };
    for (name, value) in [("traceparent", Some(parent)), ("tracestate", tracestate)] {
        if let Some(value) = value {
            headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
        }
    }
    headers
}

/// The trace context headers an enqueued request carries: the HTTP caller's own (`traceparent`,
/// `tracestate`), passed through as they came so that its trace goes on in the worker; else the
/// context of `span` (which writes nothing while no trace is exported).
pub fn request_headers(http: &reqwest::header::HeaderMap, span: &tracing::Span) -> FieldTable {
    let valid = |name: &str| {
        http.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 512)
    };
    if valid("traceparent").is_some() {
        return trace_headers(valid("traceparent"), valid("tracestate"));
    }
    let mut headers = FieldTable::default();
    hand_on(span, &mut headers);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_kept_as_text_is_carried_again() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = trace_headers(Some(parent), Some("vendor=1"));
        assert_eq!(
            trace_text(&headers),
            (Some(parent.to_string()), Some("vendor=1".to_string()))
        );
        assert!(trace_headers(None, Some("vendor=1")).inner().is_empty());
        assert_eq!(trace_text(&FieldTable::default()), (None, None));
    }

    #[test]
    fn a_message_without_trace_context_injects_nothing_and_extracts_nothing() {
        let span = tracing::Span::none();
        continue_trace(&span, None);
        continue_trace(&span, Some(&FieldTable::default()));
        let mut headers = FieldTable::default();
        hand_on(&span, &mut headers);
        assert!(headers.inner().is_empty());
    }

    #[test]
    fn an_http_callers_trace_context_passes_through_as_it_came() {
        let mut http = reqwest::header::HeaderMap::new();
        assert!(
            request_headers(&http, &tracing::Span::none())
                .inner()
                .is_empty()
        );
        // tracestate without traceparent means nothing.
        http.insert("tracestate", "vendor=opaque".parse().expect("value"));
        assert!(
            request_headers(&http, &tracing::Span::none())
                .inner()
                .is_empty()
        );
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        http.insert("traceparent", parent.parse().expect("value"));
        let headers = request_headers(&http, &tracing::Span::none());
        assert_eq!(Headers(&headers).get("traceparent"), Some(parent));
        assert_eq!(Headers(&headers).get("tracestate"), Some("vendor=opaque"));
    }

    #[test]
    fn trace_context_round_trips_through_amqp_headers() {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
        );
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        let mut out = FieldTable::default();
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(&mut out));
        assert_eq!(
            Headers(&out).get("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
