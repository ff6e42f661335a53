//! The vendor sandbox and the harness of the cross-service suites.
//!
//! The sandbox (`sandbox/`) is a local server speaking each vendor's real wire format — auth
//! flows, success and error bodies, status codes, headers — and recording every request it
//! receives. The harness (`harness.rs`) starts the real control plane and worker against the
//! shared Postgres and RabbitMQ, isolated per test (a fresh database, a unique AMQP namespace);
//! `browser.rs` drives a headless Chromium for the admin console's tests.
#![forbid(unsafe_code)]

pub mod browser;
pub mod dns;
pub mod harness;
pub mod holding;
pub mod logs;
pub mod partition;
pub mod pki;
pub mod private;
pub mod sandbox;
