//! One action's series, resolved once per published version so that an execution moves them
//! directly, and the counting of executions that have none.

use super::{Metrics, OUTCOMES, STATUS_CLASSES};
use aic_proto::ExecutionStatus;
use prometheus::{Histogram, IntCounter};

/// Where an HTTP status (`None`: no answer, a transport failure) falls in [`STATUS_CLASSES`].
fn class_index(status: Option<u16>) -> usize {
    match status {
        Some(200..=299) => 0,
        Some(300..=399) => 1,
        Some(400..=499) => 2,
        Some(_) => 3,
        None => 4,
    }
}

/// The series one action's executions move, resolved once when its published version is first
/// read ([`Metrics::action`]), so that an execution moves them directly: looked up by label
/// values, each of its four or five updates hashed the labels and took the vector's lock.
#[derive(Debug)]
pub struct ActionSeries {
    /// By [`ExecutionStatus`] (the order of [`OUTCOMES`]).
    executions: [IntCounter; 3],
    execution_duration: [Histogram; 3],
    /// By [`STATUS_CLASSES`].
    vendor_requests: [IntCounter; 5],
    /// Time of one vendor call.
    pub vendor_request_duration: Histogram,
    /// Retries scheduled.
    pub retries: IntCounter,
    /// Retries handed to a delay queue.
    pub deferred: IntCounter,
}

impl ActionSeries {
    /// Counts an execution finished with `status` after `seconds` from its delivery.
    pub fn finished(&self, status: ExecutionStatus, seconds: f64) {
        let i = status_index(status);
        self.executions[i].inc();
        self.execution_duration[i].observe(seconds);
    }

    /// Counts a vendor call answered with HTTP `status` (`None`: no answer).
    pub fn vendor_request(&self, status: Option<u16>) {
        self.vendor_requests[class_index(status)].inc();
    }
}

pub(super) fn status_index(status: ExecutionStatus) -> usize {
    match status {
        ExecutionStatus::Succeeded => 0,
        ExecutionStatus::Failed => 1,
        ExecutionStatus::UnknownOutcome => 2,
    }
}

impl Metrics {
    /// Counts an execution finished with `status` after `seconds`, in its action's `series`
    /// (`None`: none was resolved, app and action `unknown`).
    pub fn finished(&self, series: Option<&ActionSeries>, status: ExecutionStatus, seconds: f64) {
        match series {
            Some(series) => series.finished(status, seconds),
            None => {
                let status = status.as_str();
                self.executions
                    .with_label_values(&["unknown", "unknown", status])
                    .inc();
                self.execution_duration
                    .with_label_values(&["unknown", status])
                    .observe(seconds);
            }
        }
    }

    /// Counts a retry handed to a delay queue, in its action's `series` (`None`: app `unknown`).
    pub fn retry_deferred(&self, series: Option<&ActionSeries>) {
        match series {
            Some(series) => series.deferred.inc(),
            None => self.deferred.with_label_values(&["unknown"]).inc(),
        }
    }

    /// The series of `action` of `app` (created at zero if [`Self::zero`] did not).
    pub fn action(&self, app: &str, action: &str) -> ActionSeries {
        ActionSeries {
            executions: OUTCOMES.map(|o| self.executions.with_label_values(&[app, action, o])),
            execution_duration: OUTCOMES
                .map(|o| self.execution_duration.with_label_values(&[app, o])),
            vendor_requests: STATUS_CLASSES
                .map(|c| self.vendor_requests.with_label_values(&[app, c])),
            vendor_request_duration: self.vendor_request_duration.with_label_values(&[app]),
            retries: self.retries.with_label_values(&[app]),
            deferred: self.deferred.with_label_values(&[app]),
        }
    }
}
