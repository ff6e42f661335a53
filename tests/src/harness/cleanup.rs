//! What a test environment made on the shared services — its database, its AMQP namespace's
//! queues and exchanges, and whatever else its test declared — removed when the guard drops:
//! at the end of a test, however it ends, and during a start-up that fails midway.

use aic_proto::topology::Names;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};

/// Removes an environment's database and AMQP names on drop. Made before any of them exists.
#[derive(Debug)]
pub(super) struct Cleanup {
    pub(super) database: String,
    pub(super) names: Names,
    pub(super) amqp_url: String,
    pub(super) pg_admin_url: String,
    /// Queues and exchanges a test declared beside the contract's topology.
    pub(super) declared: Arc<Mutex<Vec<Declared>>>,
}

/// A queue or an exchange the clean-up deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Declared {
    Queue(String),
    Exchange(String),
}

impl Cleanup {
    /// Has the clean-up also delete `declared`.
    pub(super) fn owns(&self, declared: Declared) {
        let mut list = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        if !list.contains(&declared) {
            list.push(declared);
        }
    }
}

/// What a dropped [`Cleanup`] removes.
struct Removal {
    database: String,
    names: Names,
    amqp_url: String,
    pg_admin_url: String,
    declared: Vec<Declared>,
}

impl Removal {
    async fn run(self) {
        if let Ok(conn) = aic_core::amqp::connect(
            &SecretString::from(self.amqp_url.clone()),
            "aic-test-cleanup",
        )
        .await
        {
            let (queues, exchanges): (Vec<_>, Vec<_>) = self
                .declared
                .into_iter()
                .partition(|d| matches!(d, Declared::Queue(_)));
            // Queues before exchanges; each on a channel of its own, as deleting what a test
            // deleted already may close one.
            for d in queues.iter().chain(&exchanges) {
                let Ok(ch) = conn.create_channel().await else {
                    break;
                };
                let _ = match d {
                    Declared::Queue(q) => ch
                        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                        .await
                        .map(drop),
                    Declared::Exchange(e) => {
                        ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                            .await
                    }
                };
            }
            if let Ok(ch) = conn.create_channel().await {
                let n = &self.names;
                let delay = n.delay_queues.iter().map(|(_, q)| q);
                for q in [&n.executions_queue, &n.dead_letter_queue]
                    .into_iter()
                    .chain(delay)
                {
                    let _ = ch
                        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                for e in [
                    &n.executions_exchange,
                    &n.results_exchange,
                    &n.definitions_exchange,
                    &n.dead_letter_exchange,
                ] {
                    let _ = ch
                        .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
            }
            let _ = conn.close(200, "cleanup".into()).await;
        }
        let admin = secrecy::SecretString::from(self.pg_admin_url.clone());
        if let Ok(client) = aic_core::db::connect(&admin).await {
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.database
                ))
                .await;
        }
    }
}

/// Runs `work` to its end on a thread and runtime of its own, so that a `Drop` can from any
/// context, a panic's included.
pub(super) fn run_to_end(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(work);
    })
    .join();
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let removal = Removal {
            database: std::mem::take(&mut self.database),
            names: self.names.clone(),
            amqp_url: std::mem::take(&mut self.amqp_url),
            pg_admin_url: std::mem::take(&mut self.pg_admin_url),
            declared: self
                .declared
                .lock()
                .map(|l| l.clone())
                .unwrap_or_else(|p| p.into_inner().clone()),
        };
        run_to_end(removal.run());
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::{Options, TestEnv, database_exists};

    /// A start-up that fails after its database was made — here the broker is unreachable when
    /// the control plane connects, after the migrations ran — removes the database as the
    /// panic unwinds, rather than leaving it on the shared server.
    #[tokio::test]
    async fn a_start_up_that_fails_midway_leaves_no_database_behind() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let opts = Options {
            id: Some(id.clone()),
            // Nothing listens on port 1.
            amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".into()),
            worker: false,
            ..Options::default()
        };
        let failed = tokio::spawn(TestEnv::start_with(opts))
            .await
            .expect_err("the start-up fails");
        let panic = failed.into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("control plane builds"),
            "it failed elsewhere: {message}"
        );
        let database = format!("aic_test_{id}");
        assert!(
            !database_exists(&database).await,
            "database {database} is left"
        );
    }
}
