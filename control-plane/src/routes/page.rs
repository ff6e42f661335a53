//! Cursor paging, shared by the lists that grow without bound (an automation's executions, the
//! audit trail): newest first, each page continuing after the last record of the page before by
//! its time and id — records written in one transaction or batch share their time — so that a
//! page never skips or repeats one while others arrive.

use crate::error::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Where a page starts: after this time and id.
pub type Cursor = (DateTime<Utc>, Uuid);

/// A page's size from its `limit` parameter: 1 to 200, 50 when absent.
pub fn limit(raw: Option<i64>) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("limit must be 1 to 200, not {limit}"),
        ))
    }
}

/// The `after` parameter: the `next` of a page before.
pub fn after(raw: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    raw.map(cursor).transpose()
}

fn cursor(raw: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::invalid("after", "after must be the 'next' of a page before");
    let (at, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id.parse().map_err(|_| bad())?))
}

/// The page's first `limit` records (its query asked for one more, to know whether another
/// page follows) and, when one does, the `next` to ask for it with.
pub fn split<T>(
    mut records: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next = records.last().filter(|_| more).map(|r| next(key(r)));
    (records, next)
}

/// The `next` that continues after `cursor`.
pub fn next((at, id): Cursor) -> String {
    format!("{}_{id}", at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_a_page_wrote() {
        let at: DateTime<Utc> = "2026-12-05T12:00:00.123456Z".parse().expect("time");
        let records: Vec<Cursor> = (0..3).map(|_| (at, Uuid::now_v7())).collect();
        let (page, next) = split(records.clone(), 2, |r| *r);
        assert_eq!(page, records[..2]);
        let next = next.expect("a third record follows");
        assert_eq!(after(Some(&next)).expect("cursor"), Some(records[1]));
        assert_eq!(split(records.clone(), 3, |r| *r).1, None, "the last page");
        for bad in [
            "",
            "yesterday",
            "2026-12-05T12:00:00Z",
            "2026-12-05T12:00:00Z_x",
        ] {
            assert!(after(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_holds_1_to_200() {
        assert_eq!(limit(None).expect("default"), 50);
        assert_eq!(limit(Some(200)).expect("max"), 200);
        for bad in [0, -1, 201] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
