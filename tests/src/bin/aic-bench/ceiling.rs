//! The ceiling row: the broker alone, with the worker's prefetch and concurrency — everything
//! else in the table is a ratio of it.

use crate::machine::CpuWindow;
use crate::report::Row;
use aic_tests::harness::TestEnv;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use std::time::Instant;

/// The broker alone: consume a persistent message, publish a persistent result with a confirm,
/// ack — with the worker's prefetch and concurrency, no HTTP, no database.
pub async fn ceiling(env: &TestEnv, n: usize, prefetch: u16, label: &str) -> Row {
    let conn = &env.amqp;
    let q = format!("{}.bench-in", env.names.executions_queue);
    let out = format!("{}.bench-out", env.names.executions_queue);
    let setup = conn.create_channel().await.expect("channel");
    let args = aic_core::amqp::quorum_queue_arguments();
    for name in [&q, &out] {
        setup
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args.clone(),
            )
            .await
            .expect("queue");
    }
    let publisher = aic_core::amqp::confirm_channel(conn)
        .await
        .expect("channel");
    let body = vec![b'x'; 300];
    let mut window = crate::pipeline::Window::default();
    for _ in 0..n {
        let confirm = publisher
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                aic_core::amqp::json_properties("bench"),
            )
            .await
            .expect("publish");
        window.push(confirm).await;
    }
    window.settle().await;
    let consume = conn.create_channel().await.expect("channel");
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let results = aic_core::amqp::confirm_channel(conn)
        .await
        .expect("channel");
    let mut consumer = consume
        .basic_consume(
            q.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let cpu = CpuWindow::start(&[]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = 0;
    while done < n {
        tokio::select! {
            Some(d) = consumer.next() => {
                let d = d.expect("delivery");
                let results = results.clone();
                let out = out.clone();
                tasks.spawn(async move {
                    aic_core::amqp::publish_confirmed(&results, "", &out, &d.data, aic_core::amqp::json_properties("bench"), false).await.expect("result");
                    d.acker.ack(BasicAckOptions::default()).await.expect("ack");
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => done += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let spent = cpu.end(n);
    for name in [&q, &out] {
        let _ = setup
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
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
