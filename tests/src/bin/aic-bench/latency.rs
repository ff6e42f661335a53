//! Each execution's enqueue-to-result time: the percentiles a row prints, and the CSV files
//! `--latencies` writes of them, to tell a tail made of a few stalls from one spread out.

use crate::report::Row;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One execution of a row, in publish order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When its request was published, in ms since the row's first publish.
    pub sent_ms: f64,
    /// From just before its publish to its result's arrival; `None` if no result came.
    pub latency_ms: Option<f64>,
    /// Whether its result said `succeeded`.
    pub succeeded: bool,
}

/// The value at `p` (0 to 1) of ascending `sorted` values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// A row's label as a file name: lower case, words joined by `-` ("  same, light load at
/// 100/s" → "same-light-load-at-100-s").
fn file_name(label: &str) -> String {
    let words: Vec<String> = label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    format!("{}.csv", words.join("-"))
}

/// The CSV of one row: a header, then a line per execution in publish order (an empty latency
/// and `lost` for an execution whose result never came).
fn csv(samples: &[Sample]) -> String {
    let mut text = String::from("sent_ms,latency_ms,outcome\n");
    for s in samples {
        let outcome = match (s.latency_ms, s.succeeded) {
            (None, _) => "lost",
            (Some(_), true) => "succeeded",
            (Some(_), false) => "failed",
        };
        let latency = s.latency_ms.map(|l| format!("{l:.3}")).unwrap_or_default();
        let _ = writeln!(text, "{:.3},{latency},{outcome}", s.sent_ms);
    }
    text
}

/// Makes sure `folder` exists and takes files, before a run of minutes rather than after it.
pub fn check_folder(folder: &Path) -> Result<(), String> {
    std::fs::create_dir_all(folder).map_err(|e| e.to_string())?;
    crate::report::check_writable(folder.join(format!(".aic-bench-probe-{}", std::process::id())))
}

/// Writes a CSV into `folder` for every row that timed its executions, and names the file in
/// the row (`latencies_csv`); says which file could not be written.
pub fn write_all(folder: &Path, rows: &mut [Row]) -> Result<(), String> {
    for row in rows.iter_mut().filter(|r| !r.samples.is_empty()) {
        let path: PathBuf = folder.join(file_name(&row.scenario));
        std::fs::write(&path, csv(&row.samples)).map_err(|e| format!("{}: {e}", path.display()))?;
        row.latencies_csv = Some(path.display().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_becomes_a_plain_file_name() {
        assert_eq!(
            file_name("  same, light load at 100/s"),
            "same-light-load-at-100-s.csv"
        );
        assert_eq!(
            file_name("scale-out: 200 ms, 200 each, 2 workers"),
            "scale-out-200-ms-200-each-2-workers.csv"
        );
    }

    #[test]
    fn each_execution_is_a_line_and_a_lost_one_says_so() {
        let samples = [
            Sample {
                sent_ms: 0.0,
                latency_ms: Some(4.25),
                succeeded: true,
            },
            Sample {
                sent_ms: 10.0,
                latency_ms: Some(31.5),
                succeeded: false,
            },
            Sample {
                sent_ms: 20.0,
                latency_ms: None,
                succeeded: false,
            },
        ];
        assert_eq!(
            csv(&samples),
            "sent_ms,latency_ms,outcome\n0.000,4.250,succeeded\n10.000,31.500,failed\n20.000,,lost\n"
        );
    }

    #[test]
    fn percentiles_of_sorted_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
