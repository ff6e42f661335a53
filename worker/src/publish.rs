//! Publishing what the worker produces: results (to the results exchange and to the request's
//! `reply_to`) and dead letters (with the reason in headers). Every publish is confirmed.

use aic_core::amqp::{Broker, PublishError, json_properties, publish_confirmed};
use aic_proto::TenantId;
use aic_proto::topology::{
    DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER, EXECUTION_RESULT_TYPE, Names,
};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, LongString, ShortString};

/// Publishes a result body. `request` is the request's properties (for `reply_to` and
/// `correlation_id`).
pub async fn result(
    broker: &Broker,
    names: &Names,
    request: &BasicProperties,
    tenant: Option<TenantId>,
    status: &str,
    message_id: Option<String>,
    body: &[u8],
) -> Result<(), PublishError> {
    let mut props = json_properties(EXECUTION_RESULT_TYPE);
    if let Some(id) = &message_id {
        props = props.with_message_id(id.as_str().into());
    }
    let correlation = request
        .correlation_id()
        .clone()
        .or_else(|| message_id.as_deref().map(ShortString::from));
    if let Some(c) = &correlation {
        props = props.with_correlation_id(c.clone());
    }
    let key = Names::result_routing_key(tenant.as_ref(), status);
    let ch = broker.channel().await?;
    let ch = &ch;
    publish_confirmed(
        ch,
        &names.results_exchange,
        &key,
        body,
        props.clone(),
        false,
    )
    .await?;
    if let Some(reply_to) = request.reply_to() {
        publish_confirmed(ch, "", reply_to.as_str(), body, props, false).await?;
    }
    Ok(())
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
    let ch = broker.channel().await?;
    let ch = &ch;
    let props = original.clone().with_headers(headers).with_delivery_mode(2);
    publish_confirmed(
        ch,
        &names.dead_letter_exchange,
        "executions",
        body,
        props,
        false,
    )
    .await
}
