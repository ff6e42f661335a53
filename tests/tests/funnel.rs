//! Results go out through one publishing task (`aic_worker::funnel`): every publish of a burst
//! is confirmed and arrives once, a reply queue gets its copy, and once the task is gone the
//! callers publish from their own tasks.

use aic_core::amqp::Broker;
use aic_tests::harness::{Options, TestEnv, amqp_url};
use aic_worker::funnel::{Funnel, Job};
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn env_and_broker() -> (TestEnv, Arc<Broker>) {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let broker = Broker::connect(
        &SecretString::from(amqp_url()),
        "aic-test-funnel",
        &env.names,
    )
    .await
    .expect("RabbitMQ is up");
    (env, Arc::new(broker))
}

/// A server-named exclusive queue, bound to `exchange` for every key when one is given.
async fn queue(ch: &Channel, exchange: Option<&str>) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    let name = q.name().as_str().to_string();
    if let Some(exchange) = exchange {
        ch.queue_bind(
            name.as_str().into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    name
}

/// The message ids of the first `n` messages in `queue` (10 s at most), and whether more came.
async fn ids(ch: &Channel, queue: &str, n: usize) -> (Vec<String>, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
        {
            Some(m) => got.push(
                m.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_string())
                    .unwrap_or_default(),
            ),
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let more = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("get")
        .is_some();
    (got, more)
}

fn job(exchange: &str, i: usize, reply_to: Option<&str>) -> Job {
    Job {
        exchange: exchange.into(),
        key: format!("tenant.{i}").into(),
        reply_to: reply_to.map(Into::into),
        body: format!("{{\"n\":{i}}}").into_bytes().into(),
        properties: BasicProperties::default().with_message_id(format!("m{i}").into()),
    }
}

#[tokio::test]
async fn a_burst_of_publishes_is_confirmed_and_each_arrives_once() {
    let (env, broker) = env_and_broker().await;
    let ch = env.amqp.create_channel().await.expect("channel");
    let exchange = env.names.results_exchange.clone();
    let results = queue(&ch, Some(&exchange)).await;
    let replies = queue(&ch, None).await;
    let funnel = Funnel::start(broker);
    let n = 300;
    let publishes: Vec<_> = (0..n)
        .map(|i| {
            let (funnel, exchange) = (funnel.clone(), exchange.clone());
            let reply_to = (i % 10 == 0).then(|| replies.clone());
            tokio::spawn(
                async move { funnel.publish(job(&exchange, i, reply_to.as_deref())).await },
            )
        })
        .collect();
    for p in publishes {
        p.await.expect("joined").expect("confirmed");
    }
    let (got, more) = ids(&ch, &results, n).await;
    let expected: BTreeSet<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(got.len(), n, "{got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(!more, "a publish arrived twice");
    let (got, more) = ids(&ch, &replies, n / 10).await;
    let expected: BTreeSet<String> = (0..n).step_by(10).map(|i| format!("m{i}")).collect();
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(!more, "a reply arrived twice");
    env.stop().await;
}

#[tokio::test]
async fn without_its_task_a_funnel_publishes_from_the_callers_task() {
    let (env, broker) = env_and_broker().await;
    let ch = env.amqp.create_channel().await.expect("channel");
    let exchange = env.names.results_exchange.clone();
    let results = queue(&ch, Some(&exchange)).await;
    // The task starts on a runtime that then goes away, and the task with it.
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let funnel = {
        let _on = other.enter();
        Funnel::start(broker)
    };
    other.shutdown_background();
    funnel
        .publish(job(&exchange, 7, None))
        .await
        .expect("published from this task");
    let (got, more) = ids(&ch, &results, 1).await;
    assert_eq!(got, ["m7"]);
    assert!(!more);
    env.stop().await;
}
