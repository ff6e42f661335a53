//! The wire contract of the Action Integration Center, and nothing else.
//!
//! Every message that crosses RabbitMQ is defined here as a versioned serde type with a JSON
//! Schema (checked in under `proto/schemas/`, see `AMQP.md`). No I/O lives in this crate, so a
//! client in another language needs only the schemas and the contract document.
#![forbid(unsafe_code)]

pub mod decode;
pub mod definition;
pub mod execution;
pub mod ids;
mod result_json;
pub mod text;
pub mod topology;
pub mod whole;

pub use decode::DecodeError;
pub use definition::{
    AutomationDefinition, Dedupe, DefinitionPublishedV1, HttpMethod, ParameterLocation,
    ParameterSpec, ParameterType, RetrySpec, ThrottlePolicy, Transform,
};
pub use execution::{
    ExecutionError, ExecutionErrorCode, ExecutionRequestV1, ExecutionResultV1, ExecutionStatus,
    VendorError,
};
pub use ids::{AutomationId, ConnectionId, ExecutionId, TenantId, VersionId};

/// The only message version this build speaks; a message carrying another is refused.
pub const MESSAGE_VERSION: u32 = 1;

/// The largest execution request a worker reads, in bytes: 4 MiB, twice what the control
/// plane's API takes in a body, so that every request it enqueues fits. A larger one is not
/// run — its values would go into the ledger, to the vendor and into every copy of it — but
/// dead-lettered as `request_too_large` and answered `invalid_message` (`AMQP.md`).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
