//! A vendor call's failure, classified once: what went wrong in our codes and the vendor's, and
//! whether to retry, refresh the credential, give up, or report the outcome as unknown.

use super::transport::{Broke, MAX_ANSWER_BYTES};
use aic_proto::{ExecutionErrorCode, VendorError};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// What to do about a failure, decided once by the vendor's classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Nothing was done; trying again later may work.
    Retryable,
    /// The access token was refused: refresh it once, then retry once.
    RefreshAuth,
    /// Trying again will fail the same way.
    Permanent,
    /// The request may have been applied: never blindly re-send a create.
    UnknownOutcome,
}

impl RetryClass {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::RefreshAuth => "refresh_auth",
            Self::Permanent => "permanent",
            Self::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// A failed vendor interaction, classified.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct VendorFailure {
    /// Retry decision.
    pub class: RetryClass,
    /// Platform error code for the result.
    pub code: ExecutionErrorCode,
    /// Human explanation (never contains secrets).
    pub message: String,
    /// The vendor's own code, message and fields.
    pub vendor: Option<VendorError>,
    /// The vendor's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl VendorFailure {
    /// A failure with vendor details.
    pub fn vendor(
        class: RetryClass,
        code: ExecutionErrorCode,
        message: String,
        status: StatusCode,
        vendor_code: String,
        vendor_message: String,
        fields: Vec<String>,
    ) -> Self {
        Self {
            class,
            code,
            message,
            vendor: Some(VendorError {
                http_status: Some(status.as_u16()),
                code: vendor_code,
                message: vendor_message,
                fields,
            }),
            retry_after: None,
        }
    }

    fn transport(class: RetryClass, message: String) -> Self {
        let code = match class {
            RetryClass::UnknownOutcome => ExecutionErrorCode::UnknownOutcome,
            _ => ExecutionErrorCode::VendorUnavailable,
        };
        Self {
            class,
            code,
            message,
            vendor: None,
            retry_after: None,
        }
    }

    /// A connection whose configuration lacks something (never retried).
    pub fn config(message: String) -> Self {
        Self {
            class: RetryClass::Permanent,
            code: ExecutionErrorCode::VendorAuthFailed,
            message,
            vendor: None,
            retry_after: None,
        }
    }

    /// A request the vendor cannot serve, found out without its error (never retried).
    pub fn rejected(message: String) -> Self {
        Self {
            class: RetryClass::Permanent,
            code: ExecutionErrorCode::VendorRejected,
            message,
            vendor: None,
            retry_after: None,
        }
    }

    /// Refused by our own egress policy before any byte left.
    pub fn egress(e: crate::egress::EgressError) -> Self {
        Self {
            class: RetryClass::Permanent,
            code: ExecutionErrorCode::VendorRejected,
            message: format!("egress refused: {e}"),
            vendor: None,
            retry_after: None,
        }
    }

    /// With the vendor's `Retry-After`.
    pub fn with_retry_after(mut self, headers: &HeaderMap) -> Self {
        self.retry_after = retry_after(headers);
        self
    }
}

/// Classifies a transport error of reqwest (token requests); see [`broke`].
pub fn transport_failure(e: &reqwest::Error, sent_write: bool) -> VendorFailure {
    broke(Broke::of(e), sent_write)
}

/// A success status whose body is not JSON, which none of the vendors' APIs answers: a proxy,
/// a gateway or a sign-in page answered in the vendor's place (`content_type`, as it said). A
/// write may or may not have reached the vendor behind it — an unknown outcome, resolved as any
/// other (the vendor's dedupe handle looked up where there is one); a read (a connection's
/// test, a describe) read nothing.
pub fn not_the_vendors_answer(
    status: StatusCode,
    content_type: Option<&str>,
    sent_write: bool,
) -> VendorFailure {
    let kind: String = content_type
        .unwrap_or("no content type")
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    let what = format!(
        "the vendor's address answered {status} with a body that is not JSON ({kind}): a proxy \
         or a sign-in page may have answered in the vendor's place"
    );
    if sent_write {
        VendorFailure::transport(
            RetryClass::UnknownOutcome,
            format!("{what}; the request may have been applied"),
        )
    } else {
        VendorFailure::transport(RetryClass::Retryable, what)
    }
}

/// Classifies a call that got no whole answer. Before the request was written (connect
/// failures) retrying is safe; after, a create may have been applied, so `sent_write` makes it
/// an unknown outcome.
pub fn broke(how: Broke, sent_write: bool) -> VendorFailure {
    let what = match how {
        Broke::Connect => {
            return VendorFailure::transport(
                RetryClass::Retryable,
                "could not connect to the vendor".into(),
            );
        }
        Broke::Timeout => "the vendor did not answer in time".to_string(),
        Broke::Broken => "the connection to the vendor broke".to_string(),
        Broke::TooLarge => format!(
            "the vendor's answer was larger than the {} MiB a worker reads",
            MAX_ANSWER_BYTES >> 20
        ),
    };
    match (sent_write, how) {
        (true, _) => VendorFailure::transport(
            RetryClass::UnknownOutcome,
            format!("{what} after the request was sent; it may have been applied"),
        ),
        // The same read would bring the same answer again.
        (false, Broke::TooLarge) => VendorFailure::transport(RetryClass::Permanent, what),
        (false, _) => VendorFailure::transport(RetryClass::Retryable, what),
    }
}

/// `Retry-After` in seconds or as an HTTP-date, as a delay from now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .to_rfc2822()
            .replace("+0000", "GMT");
        h.insert("retry-after", later.parse().expect("value"));
        let d = retry_after(&h).expect("a date");
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        h.insert("retry-after", "soon".parse().expect("value"));
        assert_eq!(retry_after(&h), None);
    }
}
