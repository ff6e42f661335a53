//! What the control plane and the worker share: infrastructure set-up (Postgres pool, AMQP
//! topology), credential sealing, the catalogue of apps and automation templates, parameter
//! validation, and the vendor connectors that both test connections and run executions.
#![forbid(unsafe_code)]

pub mod amqp;
pub mod catalog;
pub mod config;
pub mod cooldown;
pub mod credentials;
pub mod db;
pub mod egress;
pub mod metrics;
pub mod params;
pub mod pointer;
pub mod shutdown;
pub mod telemetry;
pub mod vendor;
