//! The ceiling rows: the broker alone, with the worker's prefetch and concurrency — everything
//! else in the table is a ratio of them.

use crate::machine::{CpuSpent, CpuWindow};
use crate::report::Row;
use aic_proto::topology::Names;
use aic_tests::harness::TestEnv;
use futures_util::StreamExt;
use lapin::ExchangeKind;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use std::time::Instant;

/// How the broker routes the ceiling's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Results straight into their queue (the default exchange): the least work a broker does
    /// per message, and the ceiling every ratio is to.
    Queue,
    /// As the contract routes them (`proto/AMQP.md`): requests from a queue with the executions
    /// queue's arguments (delivery limit, dead-lettering), results through a topic exchange
    /// with a `<tenant_id>.<status>` key into a quorum queue bound `#`, as the drained row's
    /// results go — the broker's work per execution in that row, whatever the worker does.
    Contract,
}

/// The broker alone: consume a persistent message, publish a persistent result with a confirm,
/// ack — with the worker's prefetch and concurrency, no HTTP, no database.
pub async fn ceiling(env: &TestEnv, n: usize, prefetch: u16, route: Route, label: &str) -> Row {
    let conn = &env.amqp;
    let q = crate::pipeline::bench_queue(env, "in");
    let out = crate::pipeline::bench_queue(env, "out");
    let exchange = crate::pipeline::bench_exchange(env);
    // Deleted below, or by the environment's clean-up if the run stops before.
    env.owns_queue(&q);
    env.owns_queue(&out);
    env.owns_exchange(&exchange);
    let setup = conn.create_channel().await.expect("channel");
    declare(&setup, env, [&q, &out], route).await;
    // Where each result is published: the default exchange and the queue's name, or the
    // contract's topic exchange and key (shared by the tasks, not copied for each).
    let to = std::sync::Arc::new(match route {
        Route::Queue => (String::new(), out.clone()),
        Route::Contract => {
            routed(&setup, &exchange, &out).await;
            let key = Names::result_routing_key(Some(&env.tenant), "succeeded");
            (exchange.clone(), key)
        }
    });
    fill(conn, &q, n).await;
    // The consumer and its channels outlive the queues' deletion below, as the broker then
    // cancels the consumer itself: dropped before, lapin would cancel it while the broker
    // answers, and take the late cancel-ok for a protocol error that closes the connection.
    let (_consume, mut consumer) = subscribe(conn, &q, prefetch).await;
    let results = aic_core::amqp::confirm_channel(conn)
        .await
        .expect("channel");
    let (elapsed, spent) = answer(&mut consumer, &results, to, n).await;
    for name in [&q, &out] {
        let _ = setup
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    if route == Route::Contract {
        let _ = setup
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    Row {
        scenario: label.into(),
        executions: n,
        per_second: n as f64 / elapsed,
        machine_cpu_us_per_execution: spent.machine_us,
        machine_busy_pct: spent.machine_busy_pct,
        machine_steal_pct: spent.machine_steal_pct,
        machine_cpu_us_by_process: spent.by_process_us,
        ..Row::default()
    }
}

/// Declares the row's durable queues of requests and of results: the requests' with the
/// executions queue's arguments on the contract's route.
async fn declare(setup: &lapin::Channel, env: &TestEnv, [q, out]: [&String; 2], route: Route) {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let in_args = match route {
        Route::Queue => aic_core::amqp::quorum_queue_arguments(),
        Route::Contract => aic_core::amqp::executions_queue_arguments(&env.names),
    };
    for (name, args) in [
        (q, in_args),
        (out, aic_core::amqp::quorum_queue_arguments()),
    ] {
        setup
            .queue_declare(name.as_str().into(), durable, args)
            .await
            .expect("queue");
    }
}

/// Declares the durable topic `exchange` the contract's results go through, `out` bound to it
/// for every key.
async fn routed(setup: &lapin::Channel, exchange: &str, out: &str) {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    setup
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    setup
        .queue_bind(
            out.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
}

/// Queues `n` persistent requests in `q`, each confirmed (not timed).
async fn fill(conn: &lapin::Connection, q: &str, n: usize) {
    let publisher = aic_core::amqp::confirm_channel(conn)
        .await
        .expect("channel");
    let body = vec![b'x'; 300];
    let mut window = crate::pipeline::Window::default();
    for _ in 0..n {
        let confirm = publisher
            .basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                &body,
                aic_core::amqp::json_properties("bench"),
            )
            .await
            .expect("publish");
        window.push(confirm).await;
    }
    window.settle().await;
}

/// A consumer of `q` with `prefetch`, on a channel of its own.
async fn subscribe(
    conn: &lapin::Connection,
    q: &str,
    prefetch: u16,
) -> (lapin::Channel, lapin::Consumer) {
    let consume = conn.create_channel().await.expect("channel");
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let consumer = consume
        .basic_consume(
            q.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    (consume, consumer)
}

/// Takes `n` requests off `consumer`, each answered on its own task: its result published on
/// `results` to `to` (exchange, key) and confirmed, then the request acked. The time it took,
/// in seconds, and the machine's CPU over it.
async fn answer(
    consumer: &mut lapin::Consumer,
    results: &lapin::Channel,
    to: std::sync::Arc<(String, String)>,
    n: usize,
) -> (f64, CpuSpent) {
    let cpu = CpuWindow::start(&[]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = 0;
    while done < n {
        tokio::select! {
            Some(d) = consumer.next() => {
                let d = d.expect("delivery");
                let results = results.clone();
                let to = to.clone();
                tasks.spawn(async move {
                    let (exchange, key) = &*to;
                    aic_core::amqp::publish_confirmed(&results, exchange, key, &d.data, aic_core::amqp::json_properties("bench"), false).await.expect("result");
                    d.acker.ack(BasicAckOptions::default()).await.expect("ack");
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => done += 1,
        }
    }
    (started.elapsed().as_secs_f64(), cpu.end(n))
}
