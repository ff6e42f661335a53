//! The dead-letter queue, for operators: list what is there and why, and replay messages to
//! the executions exchange once the cause is fixed. Listing holds the messages unacknowledged
//! and gives them all back when done, so it changes nothing.

use aic_proto::topology::{
    DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER, EXECUTE_ROUTING_KEY, Names,
    REPLAYED_HEADER,
};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use serde::Serialize;

/// One dead-lettered message, as listed.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// Machine reason (`invalid_json`, `unknown_version`, …; `delivery_limit` when the broker
    /// dead-lettered it after too many deliveries).
    pub reason: String,
    /// Human explanation.
    pub detail: String,
    /// The execution id, when the body names one.
    pub execution_id: Option<String>,
    /// The body, shortened.
    pub body: String,
}

fn header(headers: &Option<FieldTable>, name: &str) -> Option<String> {
    match headers.as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn describe(props: &BasicProperties, body: &[u8]) -> DeadLetter {
    let headers = props.headers();
    let broker_death = headers
        .as_ref()
        .is_some_and(|h| h.inner().contains_key("x-death"));
    let reason = header(headers, DEAD_LETTER_REASON_HEADER).unwrap_or_else(|| {
        if broker_death {
            "delivery_limit".into()
        } else {
            "unknown".into()
        }
    });
    let detail = header(headers, DEAD_LETTER_DETAIL_HEADER).unwrap_or_else(|| {
        if broker_death {
            "the broker dead-lettered it after too many deliveries".into()
        } else {
            String::new()
        }
    });
    let execution_id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["execution_id"].as_str().map(str::to_string));
    DeadLetter {
        reason,
        detail,
        execution_id,
        body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// Lists up to `limit` dead letters without removing them.
pub async fn list(
    conn: &Connection,
    names: &Names,
    limit: usize,
) -> Result<Vec<DeadLetter>, lapin::Error> {
    let ch = conn.create_channel().await?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(m) = ch
            .basic_get(
                names.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        else {
            break;
        };
        out.push(describe(&m.delivery.properties, &m.delivery.data));
    }
    // Closing the channel returns every message it held, in order.
    ch.close(200, "listed".into()).await?;
    Ok(out)
}

/// Republishes dead letters matching `filter` to the executions exchange (confirmed), then
/// removes them from the DLQ. Returns how many were replayed.
///
/// A confirm not come within [`crate::resend::CONFIRM_WAIT`] — the broker blocks publishing
/// (a memory or disk alarm: it reads nothing more from the connection until the alarm clears)
/// or does not answer — ends the replay with an error saying how many were replayed: the rest
/// stay in the DLQ, given back when the connection ends. The message whose confirm did not
/// come may still go out once the broker reads again; replayed twice, it is answered from the
/// execution ledger, not run twice.
pub async fn replay(
    conn: &Connection,
    names: &Names,
    filter: impl Fn(&DeadLetter) -> bool,
) -> anyhow::Result<usize> {
    let get = conn.create_channel().await?;
    let publish = aic_core::amqp::confirm_channel(conn).await?;
    let mut replayed = 0;
    while let Some(m) = get
        .basic_get(
            names.dead_letter_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await?
    {
        let d = &m.delivery;
        if !filter(&describe(&d.properties, &d.data)) {
            continue;
        }
        if conn.status().blocked() {
            anyhow::bail!(withheld(conn, replayed));
        }
        // A fresh start: the dead-letter headers would only confuse the next reader.
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        let mut clean = FieldTable::default();
        for (k, v) in headers.inner() {
            if !k.as_str().starts_with("x-aic-dead-letter")
                && k.as_str() != "x-death"
                && !k.as_str().starts_with("x-first-death")
                && !k.as_str().starts_with("x-last-death")
            {
                clean.insert(k.clone(), v.clone());
            }
        }
        // Settled by whichever worker takes it, not taken for a second copy of a request under
        // way (see the worker's ledger).
        clean.insert(REPLAYED_HEADER.into(), AMQPValue::Boolean(true));
        headers = clean;
        let props = d.properties.clone().with_headers(headers);
        let confirmed = aic_core::amqp::publish_confirmed(
            &publish,
            &names.executions_exchange,
            EXECUTE_ROUTING_KEY,
            &d.data,
            props,
            true,
        );
        match tokio::time::timeout(crate::resend::CONFIRM_WAIT, confirmed).await {
            Ok(confirmed) => confirmed?,
            Err(_) => anyhow::bail!(withheld(conn, replayed)),
        }
        d.acker.ack(BasicAckOptions::default()).await?;
        replayed += 1;
    }
    get.close(200, "replayed".into()).await?;
    Ok(replayed)
}

/// Why a replay stopped before the DLQ's end, `replayed` messages in.
fn withheld(conn: &Connection, replayed: usize) -> String {
    let why = if conn.status().blocked() {
        "RabbitMQ blocks publishing (a memory or disk alarm)".to_string()
    } else {
        let wait = crate::resend::CONFIRM_WAIT.as_secs();
        format!("RabbitMQ did not confirm a replayed message within {wait} s")
    };
    format!(
        "{why}: {replayed} replayed; the rest stay in the dead-letter queue — replay them once \
         the broker takes messages again"
    )
}
