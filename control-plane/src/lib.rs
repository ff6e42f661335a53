//! The control plane: the `/v1` HTTP API through which admins and editors configure
//! connections and automations, publish immutable versions, and enqueue executions, and the
//! admin console (`/console`) that drives it from a browser.
//!
//! `main.rs` only parses configuration and calls [`startup::Application`]; tests build the same
//! application on port 0.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod dlq;
pub mod error;
pub mod extract;
pub mod keys;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod precondition;
pub mod replies;
pub mod resend;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tenants;
