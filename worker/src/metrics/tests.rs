//! The metrics' own tests: the series each label set names, and those there from start-up.

use super::actions::status_index;
use super::*;
use aic_proto::ExecutionStatus;

#[test]
fn an_actions_series_are_the_ones_its_labels_name() {
    let metrics = Metrics::new();
    metrics.zero(&Catalog::load().expect("the built-in catalogue"));
    let series = metrics.action("salesforce", "create_lead");
    for status in [
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::UnknownOutcome,
    ] {
        assert_eq!(OUTCOMES[status_index(status)], status.as_str());
    }
    metrics.finished(Some(&series), ExecutionStatus::Failed, 0.25);
    metrics.finished(Some(&series), ExecutionStatus::Failed, 0.25);
    metrics.finished(None, ExecutionStatus::UnknownOutcome, 0.5);
    for status in [Some(201), Some(302), Some(429), Some(503), Some(99), None] {
        series.vendor_request(status);
    }
    series.vendor_request_duration.observe(0.1);
    series.retries.inc();
    metrics.retry_deferred(Some(&series));
    metrics.retry_deferred(None);
    let text = metrics.render();
    for line in [
        r#"aic_executions_total{action="create_lead",app="salesforce",outcome="failed"} 2"#,
        r#"aic_executions_total{action="create_lead",app="salesforce",outcome="succeeded"} 0"#,
        r#"aic_executions_total{action="unknown",app="unknown",outcome="unknown_outcome"} 1"#,
        r#"aic_execution_duration_seconds_sum{app="salesforce",outcome="failed"} 0.5"#,
        r#"aic_execution_duration_seconds_count{app="unknown",outcome="unknown_outcome"} 1"#,
        r#"aic_vendor_requests_total{app="salesforce",status_class="2xx"} 1"#,
        r#"aic_vendor_requests_total{app="salesforce",status_class="3xx"} 1"#,
        r#"aic_vendor_requests_total{app="salesforce",status_class="4xx"} 1"#,
        r#"aic_vendor_requests_total{app="salesforce",status_class="5xx"} 2"#,
        r#"aic_vendor_requests_total{app="salesforce",status_class="transport"} 1"#,
        r#"aic_vendor_request_duration_seconds_count{app="salesforce"} 1"#,
        r#"aic_execution_retries_total{app="salesforce"} 1"#,
        r#"aic_execution_retries_deferred_total{app="salesforce"} 1"#,
        r#"aic_execution_retries_deferred_total{app="unknown"} 1"#,
        r#"aic_execution_retries_total{app="jira"} 0"#,
    ] {
        assert!(text.contains(line), "no `{line}` in {text}");
    }
}

#[test]
fn a_ledger_batch_is_counted_and_timed_even_when_it_fails() {
    let metrics = Metrics::new();
    metrics.zero(&Catalog::load().expect("the built-in catalogue"));
    let finish = metrics.ledger_batch("finish");
    let text = metrics.render();
    assert!(
        text.contains(r#"aic_ledger_batch_duration_seconds_count{statement="finish"} 0"#),
        "{text}"
    );
    let refused = || -> Result<(), &'static str> {
        let _timer = finish.start(7);
        Err("the database refused the statement")?;
        Ok(())
    };
    assert!(refused().is_err());
    let text = metrics.render();
    for line in [
        r#"aic_ledger_batch_executions_sum{statement="finish"} 7"#,
        r#"aic_ledger_batch_duration_seconds_count{statement="finish"} 1"#,
        r#"aic_ledger_batch_duration_seconds_count{statement="begin"} 0"#,
    ] {
        assert!(text.contains(line), "no `{line}` in {text}");
    }
}

#[test]
fn every_infrastructure_step_is_there_from_start_up_with_its_own_label() {
    let metrics = Metrics::new();
    metrics.zero(&Catalog::load().expect("the built-in catalogue"));
    let text = metrics.render();
    let labels: std::collections::HashSet<_> = Step::ALL.iter().map(|s| s.label()).collect();
    assert_eq!(labels.len(), Step::ALL.len(), "two steps share a label");
    for step in Step::ALL {
        let line = format!(
            r#"aic_infrastructure_retries_total{{step="{}"}} 0"#,
            step.label()
        );
        assert!(text.contains(&line), "no `{line}` in {text}");
    }
    metrics.retried(Step::Delivery);
    assert!(
        metrics
            .render()
            .contains(r#"aic_infrastructure_retries_total{step="delivery"} 1"#)
    );
}
