//! The pipeline's own bound on this machine: an execution's AMQP path with nothing else. An
//! echo consumer in this process takes each request off the real executions queue (quorum,
//! manual acks, the worker's prefetch), publishes a minimal result to the results exchange with
//! a confirm, then acks — so a run through it costs the broker what a worker's run does (the
//! request published, confirmed, delivered and acked; the result published, confirmed and
//! delivered) and nothing for the ledger, credentials, the vendor call or a second process.
//! The full pipeline's throughput against this row is what the worker's own work costs it.

use crate::pipeline;
use crate::report::Row;
use crate::workload::Workload;
use aic_proto::ExecutionRequestV1;
use aic_proto::topology::EXECUTION_RESULT_TYPE;
use aic_tests::harness::TestEnv;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::json;
use tokio::task::{JoinHandle, JoinSet};

const TAG: &str = "aic-bench-echo";

/// A running echo consumer.
pub struct Echo {
    consume: Channel,
    task: JoinHandle<usize>,
}

/// Declares the topology (no worker has run yet) and starts consuming.
pub async fn start(env: &TestEnv, prefetch: u16) -> Echo {
    let consume = env.amqp.create_channel().await.expect("channel");
    aic_core::amqp::declare_topology(&consume, &env.names)
        .await
        .expect("topology");
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let results = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    let consumer = consume
        .basic_consume(
            env.names.executions_queue.as_str().into(),
            TAG.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let task = tokio::spawn(serve(consumer, results, env.names.results_exchange.clone()));
    Echo { consume, task }
}

/// Answers each delivery of `consumer` in a task of its own until the consumer is cancelled,
/// then waits for those in flight; returns how many were answered.
async fn serve(mut consumer: lapin::Consumer, results: Channel, exchange: String) -> usize {
    let mut in_flight = JoinSet::new();
    let mut echoed = 0;
    loop {
        tokio::select! {
            d = consumer.next() => {
                // The stream ends when `stop` cancels the consumer.
                let Some(d) = d else { break };
                let d = d.expect("delivery");
                in_flight.spawn(echo(results.clone(), exchange.clone(), d));
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                done.expect("echo");
                echoed += 1;
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done.expect("echo");
        echoed += 1;
    }
    echoed
}

/// Publishes a minimal result of the request `d` carries to the results exchange (and to its
/// reply queue, if it names one) with a confirm, then acks it.
async fn echo(results: Channel, exchange: String, d: lapin::message::Delivery) {
    let req: ExecutionRequestV1 =
        serde_json::from_slice(&d.data).expect("a request as the contract says");
    let body = json!({"version": 1, "execution_id": req.execution_id,
        "tenant_id": req.tenant_id, "status": "succeeded"});
    let body = body.to_string();
    let properties = aic_core::amqp::json_properties(EXECUTION_RESULT_TYPE);
    aic_core::amqp::publish_confirmed(
        &results,
        &exchange,
        &format!("{}.succeeded", req.tenant_id),
        body.as_bytes(),
        properties.clone(),
        false,
    )
    .await
    .expect("result");
    // And to the requester's reply queue, as the worker does (`--reply-to`).
    if let Some(queue) = d.properties.reply_to() {
        aic_core::amqp::publish_confirmed(
            &results,
            "",
            queue.as_str(),
            body.as_bytes(),
            properties,
            false,
        )
        .await
        .expect("reply");
    }
    d.acker.ack(BasicAckOptions::default()).await.expect("ack");
}

impl Echo {
    /// Stops consuming and waits until every delivery taken was answered and acked, so that
    /// nothing is left on the queue for the worker that runs next. Returns how many were.
    pub async fn stop(self) -> usize {
        self.consume
            .basic_cancel(TAG.into(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        let echoed = self.task.await.expect("echo consumer");
        let _ = self.consume.close(200, "done".into()).await;
        echoed
    }
}

/// [`pipeline::run`] through the echo consumer instead of a worker (`echo`).
pub async fn path(
    env: &TestEnv,
    workload: &Workload,
    n: usize,
    prefetch: u16,
    rate: Option<f64>,
    label: &str,
) -> Row {
    let echo = start(env, prefetch).await;
    let mut row = pipeline::run(env, &workload.echoed(), n, &[], rate, label).await;
    // No worker process: the echo consumer's CPU is this process's.
    row.worker_cpu_us_per_execution = None;
    row.worker_page_faults_per_execution = None;
    let echoed = echo.stop().await;
    assert_eq!(echoed, n, "the echo consumer answered every request once");
    row
}
