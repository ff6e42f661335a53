//! Results go out through one publishing task (`aic_worker::funnel`): every publish of a burst
//! is confirmed and arrives once, a reply queue gets its copy, and once the task is gone the
//! callers publish from their own tasks.

use aic_core::amqp::Broker;
use aic_tests::harness::{Listener, Options, TestEnv, amqp_url};
use aic_worker::funnel::{Funnel, Job};
use lapin::BasicProperties;
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A test's own namespace, a broker connection on it, and a queue bound to its results
/// exchange for every key, with a spare queue for replies.
struct Setup {
    env: TestEnv,
    broker: Arc<Broker>,
    exchange: String,
    results: Listener,
    replies: Listener,
}

async fn setup() -> Setup {
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
    let exchange = env.names.results_exchange.clone();
    let results = env.listen(&exchange, "#").await;
    let replies = env.listen("", "").await;
    Setup {
        env,
        broker: Arc::new(broker),
        exchange,
        results,
        replies,
    }
}

/// The message ids of the next `n` messages (10 s at most for each), then whether one more
/// came within 200 ms.
async fn ids(messages: &mut Listener, n: usize) -> (BTreeSet<String>, usize, bool) {
    let mut got = BTreeSet::new();
    let mut count = 0;
    while count < n {
        let Some(m) = messages.next(Duration::from_secs(10)).await else {
            break;
        };
        count += 1;
        got.insert(
            m.properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_string())
                .unwrap_or_default(),
        );
    }
    let more = messages.next(Duration::from_millis(200)).await.is_some();
    (got, count, more)
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
    let mut s = setup().await;
    let funnel = Funnel::start(s.broker.clone());
    let n = 300;
    let publishes: Vec<_> = (0..n)
        .map(|i| {
            let (funnel, exchange) = (funnel.clone(), s.exchange.clone());
            let reply_to = (i % 10 == 0).then(|| s.replies.queue.clone());
            tokio::spawn(
                async move { funnel.publish(job(&exchange, i, reply_to.as_deref())).await },
            )
        })
        .collect();
    for p in publishes {
        p.await.expect("joined").expect("confirmed");
    }
    let (got, count, more) = ids(&mut s.results, n).await;
    assert_eq!(got, (0..n).map(|i| format!("m{i}")).collect());
    assert_eq!(count, n);
    assert!(!more, "a publish arrived twice");
    let (got, count, more) = ids(&mut s.replies, n / 10).await;
    assert_eq!(got, (0..n).step_by(10).map(|i| format!("m{i}")).collect());
    assert_eq!(count, n / 10);
    assert!(!more, "a reply arrived twice");
    s.env.stop().await;
}

#[tokio::test]
async fn without_its_task_a_funnel_publishes_from_the_callers_task() {
    let mut s = setup().await;
    // The task starts on a runtime that then goes away, and the task with it.
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let funnel = {
        let _on = other.enter();
        Funnel::start(s.broker.clone())
    };
    other.shutdown_background();
    funnel
        .publish(job(&s.exchange, 7, None))
        .await
        .expect("published from this task");
    let (got, count, more) = ids(&mut s.results, 1).await;
    assert_eq!(got, BTreeSet::from(["m7".to_string()]));
    assert_eq!(count, 1);
    assert!(!more);
    s.env.stop().await;
}
