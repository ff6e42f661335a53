//! The names of the AMQP contract (see `AMQP.md`). Every name is prefixed by a namespace
//! (`aic` unless the operator configures another), so several environments can share a vhost.

/// Routing key for execution requests published to the executions exchange.
pub const EXECUTE_ROUTING_KEY: &str = "execute";
/// Routing key of definition-published events.
pub const DEFINITION_PUBLISHED_ROUTING_KEY: &str = "definition.published";
/// AMQP `type` property of an execution request.
pub const EXECUTION_REQUEST_TYPE: &str = "aic.execution_request.v1";
/// AMQP `type` property of an execution result.
pub const EXECUTION_RESULT_TYPE: &str = "aic.execution_result.v1";
/// AMQP `type` property of a definition-published event.
pub const DEFINITION_PUBLISHED_TYPE: &str = "aic.definition_published.v1";
/// Header set on a dead-lettered message: a stable machine reason (`invalid_json`, …).
pub const DEAD_LETTER_REASON_HEADER: &str = "x-aic-dead-letter-reason";
/// Header set on a dead-lettered message: a human explanation of the reason.
pub const DEAD_LETTER_DETAIL_HEADER: &str = "x-aic-dead-letter-detail";
/// Header of a request re-queued for a later retry: vendor calls made so far.
pub const RETRY_ATTEMPTS_HEADER: &str = "x-aic-attempts";
/// Header of a request re-queued for a later retry: Unix ms of its first vendor call (the
/// retry budget runs from there).
pub const RETRY_FIRST_ATTEMPT_HEADER: &str = "x-aic-first-attempt-at";
/// Header of a request re-queued for a later retry: Unix ms before which it must not run.
pub const RETRY_NOT_BEFORE_HEADER: &str = "x-aic-not-before";
/// Header of a request re-queued for a later retry: its hand-off number, matched against the
/// ledger so that only the latest copy of an execution runs.
pub const RETRY_SEQ_HEADER: &str = "x-aic-retry-seq";
/// Header of a request re-queued to wait out its connection's cool-down (`1`): it comes back at
/// least every `AIC_WORKER_COOLDOWN_RECHECK_MS` to look at the cool-down again, and runs as soon
/// as it has ended — at its time, or earlier when an admin ends it.
pub const RETRY_HELD_HEADER: &str = "x-aic-held";
/// Header of a request an operator replayed from the dead-letter queue (`dlq-replay`): like a
/// broker redelivery, it settles its execution's ledger row itself (in doubt where a call may
/// have left) instead of waiting for another copy of the request to finish it.
pub const REPLAYED_HEADER: &str = "x-aic-replayed";
/// The delay queues' waits, in seconds: a wait is served by the longest tier that does not
/// overshoot it, then the next, until what is left is short enough to sleep in the worker.
pub const DELAY_TIERS_SECS: [u64; 5] = [1, 5, 30, 120, 600];

/// The exchange, queue and key names for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Topic exchange clients publish execution requests to.
    pub executions_exchange: String,
    /// Durable quorum queue the workers consume.
    pub executions_queue: String,
    /// Topic exchange results are published to, routing key `<tenant_id>.<status>`.
    pub results_exchange: String,
    /// Topic exchange definition-published events go to.
    pub definitions_exchange: String,
    /// Direct exchange for messages that can never be processed.
    pub dead_letter_exchange: String,
    /// Durable quorum queue holding dead-lettered execution requests.
    pub dead_letter_queue: String,
    /// Delay queues, one per [`DELAY_TIERS_SECS`] entry (`<ns>.executions.delay.<secs>s`):
    /// a message expires after the tier's TTL and is dead-lettered back to the executions
    /// exchange with routing key `execute`.
    pub delay_queues: Vec<(u64, String)>,
}

impl Names {
    /// Names for `namespace` (`aic` by default).
    pub fn new(namespace: &str) -> Self {
        Self {
            executions_exchange: format!("{namespace}.executions"),
            executions_queue: format!("{namespace}.executions"),
            results_exchange: format!("{namespace}.results"),
            definitions_exchange: format!("{namespace}.definitions"),
            dead_letter_exchange: format!("{namespace}.dead-letter"),
            dead_letter_queue: format!("{namespace}.executions.dlq"),
            delay_queues: DELAY_TIERS_SECS
                .iter()
                .map(|s| (*s, format!("{namespace}.executions.delay.{s}s")))
                .collect(),
        }
    }

    /// The delay queue for the next hop of a wait of `ms` milliseconds: the longest tier that
    /// does not overshoot it (`None` when even the shortest would).
    pub fn delay_queue_for(&self, ms: u64) -> Option<(u64, &str)> {
        self.delay_queues
            .iter()
            .rev()
            .find(|(secs, _)| secs * 1000 <= ms)
            .map(|(secs, q)| (*secs, q.as_str()))
    }

    /// Routing key of a result: consumers bind `<tenant_id>.#` or `#`.
    pub fn result_routing_key(tenant: Option<&crate::TenantId>, status: &str) -> String {
        // Written in place rather than through `format!`, once for every result.
        let mut buf = uuid::Uuid::encode_buffer();
        let tenant = match tenant {
            Some(t) => &*t.0.hyphenated().encode_lower(&mut buf),
            None => "unknown",
        };
        [tenant, ".", status].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_routed_by_its_tenant_then_its_status() {
        let tenant = crate::TenantId(uuid::Uuid::new_v4());
        assert_eq!(
            Names::result_routing_key(Some(&tenant), "succeeded"),
            format!("{}.succeeded", tenant.0.hyphenated())
        );
        assert_eq!(Names::result_routing_key(None, "failed"), "unknown.failed");
    }
}
