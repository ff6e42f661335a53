//! The execution engine. Competing consumers on the executions queue: each delivery is decoded,
//! answered from the ledger if it already finished, resolved to its published definition and
//! connection, validated, sent to the vendor with retries, recorded, published as a result with
//! a publisher confirm, and only then acknowledged.
#![forbid(unsafe_code)]

pub mod acks;
pub mod admin;
pub mod attached;
pub mod batch;
pub mod budget;
pub mod config;
pub mod consumer;
pub mod dedupe;
mod delays;
pub mod executor;
pub mod funnel;
pub mod gate;
pub mod invoke;
pub mod ledger;
pub mod metrics;
mod outcome;
mod perform;
pub mod publish;
mod refuse;
pub mod resolve;
pub mod retry;
pub mod startup;
pub mod tokens;
