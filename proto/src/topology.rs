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
        }
    }

    /// Routing key of a result: consumers bind `<tenant_id>.#` or `#`.
    pub fn result_routing_key(tenant: Option<&crate::TenantId>, status: &str) -> String {
        match tenant {
            Some(t) => format!("{t}.{status}"),
            None => format!("unknown.{status}"),
        }
    }
}
