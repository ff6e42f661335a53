//! Publishing what the worker produces: results (to the results exchange and to the request's
//! `reply_to`) and dead letters (with the reason in headers). Every publish is confirmed.

use crate::funnel::{Funnel, Job};
use aic_core::amqp::{Broker, PublishError, json_properties};
use aic_proto::TenantId;
use aic_proto::topology::{
    DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER, EXECUTE_ROUTING_KEY,
    EXECUTION_RESULT_TYPE, Names, RETRY_ATTEMPTS_HEADER, RETRY_FIRST_ATTEMPT_HEADER,
    RETRY_HELD_HEADER, RETRY_NOT_BEFORE_HEADER, RETRY_SEQ_HEADER,
};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::sync::Arc;

/// Publishes a result body. `request` is the request's properties (for `reply_to` and
/// `correlation_id`); `headers` go on the result as they are (trace context).
#[allow(clippy::too_many_arguments)]
pub async fn result(
    funnel: &Funnel,
    names: &Names,
    request: &BasicProperties,
    tenant: Option<TenantId>,
    status: &str,
    message_id: Option<String>,
    headers: FieldTable,
    body: Arc<[u8]>,
) -> Result<(), PublishError> {
    let key = Names::result_routing_key(tenant.as_ref(), status);
    funnel
        .publish(Job {
            exchange: names.results_exchange.as_str().into(),
            key: key.into(),
            reply_to: request.reply_to().clone(),
            body,
            properties: result_properties(request, message_id, headers),
        })
        .await
}

/// Publishes a result body to the request's `reply_to` only, if it has one.
pub async fn reply(
    funnel: &Funnel,
    request: &BasicProperties,
    message_id: Option<String>,
    body: Arc<[u8]>,
) -> Result<(), PublishError> {
    let Some(reply_to) = request.reply_to().clone() else {
        return Ok(());
    };
    funnel
        .publish(Job {
            exchange: "".into(),
            key: reply_to,
            reply_to: None,
            body,
            properties: result_properties(request, message_id, FieldTable::default()),
        })
        .await
}

/// A result's properties: its type, `headers`, the execution id as message id, and the
/// request's correlation id (the execution id where it has none).
fn result_properties(
    request: &BasicProperties,
    message_id: Option<String>,
    headers: FieldTable,
) -> BasicProperties {
    let mut props = json_properties(EXECUTION_RESULT_TYPE);
    if !headers.inner().is_empty() {
        props = props.with_headers(headers);
    }
    let correlation = request
        .correlation_id()
        .clone()
        .or_else(|| message_id.as_deref().map(ShortString::from));
    if let Some(id) = message_id {
        props = props.with_message_id(id.into());
    }
    if let Some(c) = correlation {
        props = props.with_correlation_id(c);
    }
    props
}

/// Publishes an execution's result (as the ledger stored it) for the delivery that asked,
/// carrying the execution's trace on to whoever consumes it.
pub async fn execution_result(
    funnel: &Funnel,
    names: &Names,
    delivery: &lapin::message::Delivery,
    req: &aic_proto::ExecutionRequestV1,
    status: &str,
    result: Arc<str>,
) -> Result<(), String> {
    let mut headers = lapin::types::FieldTable::default();
    aic_core::telemetry::hand_on(&tracing::Span::current(), &mut headers);
    self::result(
        funnel,
        names,
        &delivery.properties,
        Some(req.tenant_id),
        status,
        Some(req.execution_id.to_string()),
        headers,
        result.into(),
    )
    .await
    .map_err(|e| format!("result not confirmed: {e}"))
}

/// Copies a message that can never be processed to the dead-letter exchange, adding why.
pub async fn dead_letter(
    broker: &Broker,
    names: &Names,
    original: &BasicProperties,
    body: &[u8],
    reason: &str,
    detail: &str,
) -> Result<(), PublishError> {
    let mut headers = original.headers().clone().unwrap_or_default();
    headers.insert(
        DEAD_LETTER_REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    let detail: String = detail.chars().take(1000).collect();
    headers.insert(
        DEAD_LETTER_DETAIL_HEADER.into(),
        AMQPValue::LongString(LongString::from(detail.as_str())),
    );
    let props = original.clone().with_headers(headers).with_delivery_mode(2);
    // Mandatory: with its queue gone, a dead letter would be dropped without a word.
    let to = (names.dead_letter_exchange.as_str(), "executions");
    broker.publish_routed(to, body, props).await
}

/// Where a request waits before its next attempt, read from and written to its headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handoff {
    /// Vendor calls made so far.
    pub attempts: u32,
    /// Unix ms of the first vendor call.
    pub first_attempt_ms: Option<i64>,
    /// Unix ms before which the request must not run.
    pub not_before_ms: Option<i64>,
    /// Hand-off number (0 for a request as clients publish it).
    pub seq: i32,
    /// The wait is the connection's cool-down: the copy comes back at least every
    /// `AIC_WORKER_COOLDOWN_RECHECK_MS` to look at it again.
    pub held: bool,
}

fn header_i64(props: &BasicProperties, key: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// Whether the request was replayed from the dead-letter queue by an operator
/// ([`aic_proto::topology::REPLAYED_HEADER`]).
pub fn replayed(props: &BasicProperties) -> bool {
    props.headers().as_ref().is_some_and(|h| {
        matches!(
            h.inner().get(aic_proto::topology::REPLAYED_HEADER),
            Some(AMQPValue::Boolean(true))
        )
    })
}

impl Handoff {
    /// Reads the retry headers (absent or unreadable ones read as a first delivery's).
    pub fn read(props: &BasicProperties) -> Self {
        Self {
            attempts: header_i64(props, RETRY_ATTEMPTS_HEADER)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            first_attempt_ms: header_i64(props, RETRY_FIRST_ATTEMPT_HEADER),
            not_before_ms: header_i64(props, RETRY_NOT_BEFORE_HEADER),
            seq: header_i64(props, RETRY_SEQ_HEADER)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
            held: header_i64(props, RETRY_HELD_HEADER) == Some(1),
        }
    }
}

/// Parks a copy of the request (same body and properties, `handoff` in its headers) until
/// `handoff.not_before_ms`: in the longest delay queue that does not overshoot the wait (nor,
/// for a copy held by a cool-down, `recheck_ms`), in the shortest for a wait shorter than
/// every tier, or, when it is due, straight back on the executions queue. Confirmed before it
/// returns, so the caller may then ack the delivery it holds.
pub async fn handoff(
    broker: &Broker,
    names: &Names,
    (request, body): (&BasicProperties, &[u8]),
    handoff: Handoff,
    now_ms: i64,
    recheck_ms: u64,
) -> Result<(), PublishError> {
    let mut headers = request.headers().clone().unwrap_or_default();
    let mut set = |k: &str, v: i64| {
        headers.insert(k.into(), AMQPValue::LongLongInt(v));
    };
    set(RETRY_ATTEMPTS_HEADER, i64::from(handoff.attempts));
    set(RETRY_SEQ_HEADER, i64::from(handoff.seq));
    if let Some(v) = handoff.first_attempt_ms {
        set(RETRY_FIRST_ATTEMPT_HEADER, v);
    }
    if let Some(v) = handoff.not_before_ms {
        set(RETRY_NOT_BEFORE_HEADER, v);
    }
    if handoff.held {
        set(RETRY_HELD_HEADER, 1);
    }
    // The broker's own death records would grow with every hop; the headers above say it all.
    let mut headers = headers.inner().clone();
    if !handoff.held {
        // Copied from the delivery: an earlier hop's.
        headers.remove(RETRY_HELD_HEADER);
    }
    headers.remove("x-death");
    headers.remove("x-first-death-exchange");
    headers.remove("x-first-death-queue");
    headers.remove("x-first-death-reason");
    let props = request
        .clone()
        .with_headers(headers.into())
        .with_delivery_mode(2);
    let mut wait_ms = handoff
        .not_before_ms
        .map(|t| u64::try_from(t - now_ms).unwrap_or(0))
        .unwrap_or(0);
    if handoff.held {
        wait_ms = wait_ms.min(recheck_ms);
    }
    let shortest = names.delay_queues.first().map(|(_, q)| q.as_str());
    let to = match (names.delay_queue_for(wait_ms), shortest) {
        (Some((_, queue)), _) => ("", queue),
        // Not due yet, but sooner than the shortest tier: sent straight back it would come
        // straight back, again and again until due — a loop through the broker (hundreds of
        // hops a second where `AIC_WORKER_RETRY_INLINE_MAX_MS` is below the shortest tier).
        // The shortest tier overshoots by less than its length.
        (None, Some(queue)) if wait_ms > 0 => ("", queue),
        (None, _) => (names.executions_exchange.as_str(), EXECUTE_ROUTING_KEY),
    };
    broker.publish_routed(to, body, props).await
}
