//! What an execution came to, before it is recorded: the status, output or error the result
//! will carry, and whether the retry leaves through a delay queue.

use aic_core::vendor::VendorFailure;
use aic_proto::{ExecutionError, ExecutionErrorCode, ExecutionStatus};
use serde_json::Value;

/// An execution's end, as the worker saw it.
pub(crate) struct Outcome {
    pub(crate) deduplicated: bool,
    pub(crate) status: ExecutionStatus,
    pub(crate) output: Option<serde_json::Map<String, Value>>,
    pub(crate) error: Option<ExecutionError>,
    pub(crate) attempts: u32,
    pub(crate) version: Option<aic_proto::VersionId>,
    /// The metric series of the action run (`None` before one is resolved: app and action
    /// `unknown`).
    pub(crate) series: Option<std::sync::Arc<crate::metrics::ActionSeries>>,
    /// The next retry is due later than the worker waits in-process: hand it to a delay queue.
    pub(crate) defer: Option<Defer>,
}

/// A retry handed to a delay queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defer {
    /// Due in this long.
    pub(crate) wait: std::time::Duration,
    /// The Unix ms of the first vendor call (the retry budget runs from it).
    pub(crate) first_ms: i64,
    /// The wait is the connection's cool-down, which may end early (an admin ends it): the
    /// copy comes back now and then to look again.
    pub(crate) held: bool,
    /// What is retried is the lookup of a create that may have landed: the vendor-call mark
    /// stays, so the copy asks the vendor again before it sends anything.
    pub(crate) in_doubt: bool,
}

/// A failure with our own code (and the parameter at fault, when one is).
pub(crate) fn failed(
    code: ExecutionErrorCode,
    message: String,
    parameter: Option<String>,
) -> Outcome {
    Outcome {
        deduplicated: false,
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(ExecutionError {
            code,
            message,
            parameter,
            vendor: None,
        }),
        attempts: 0,
        version: None,
        series: None,
        defer: None,
    }
}

/// The vendor call succeeded; `deduplicated` when the vendor says it found the record rather
/// than created it (an upsert).
pub(crate) fn succeeded(success: aic_core::vendor::CallSuccess, attempts: u32) -> Outcome {
    Outcome {
        deduplicated: success.created == Some(false),
        ..deduplicated(success.output, attempts)
    }
}

/// The record was already at the vendor (found by its dedupe handle).
pub(crate) fn deduplicated(output: serde_json::Map<String, Value>, attempts: u32) -> Outcome {
    Outcome {
        deduplicated: true,
        status: ExecutionStatus::Succeeded,
        output: Some(output),
        error: None,
        attempts,
        ..failed(ExecutionErrorCode::Internal, String::new(), None)
    }
}

/// The request may have reached the vendor and nothing can tell whether it did.
pub(crate) fn unknown(message: String, attempts: u32) -> Outcome {
    Outcome {
        status: ExecutionStatus::UnknownOutcome,
        error: Some(ExecutionError {
            code: ExecutionErrorCode::UnknownOutcome,
            message,
            parameter: None,
            vendor: None,
        }),
        attempts,
        ..failed(ExecutionErrorCode::UnknownOutcome, String::new(), None)
    }
}

/// The vendor's refusal, or the transport's, as classified.
pub(crate) fn from_failure(f: VendorFailure, attempts: u32) -> Outcome {
    let status = if f.code == ExecutionErrorCode::UnknownOutcome {
        ExecutionStatus::UnknownOutcome
    } else {
        ExecutionStatus::Failed
    };
    Outcome {
        status,
        attempts,
        error: Some(ExecutionError {
            code: f.code,
            message: f.message,
            parameter: None,
            vendor: f.vendor,
        }),
        ..failed(ExecutionErrorCode::Internal, String::new(), None)
    }
}
