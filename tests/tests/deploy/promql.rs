//! Reading Prometheus text: the `aic_*` selectors of a PromQL expression, and the series of an
//! exposition, enough to check one against the other.

use std::collections::BTreeMap;

/// A PromQL selector as written: metric name and its label matchers `(label, op, value)`.
#[derive(Debug)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<(String, String, String)>,
}

/// The `aic_*` selectors in a PromQL expression (a small scanner: names are `aic_` followed by
/// `[a-z0-9_]`, matchers are `label op "value"` inside the braces that follow one).
pub fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("aic_").map(|a| a + i) {
        let word_start = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let mut end = at;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        i = end;
        // `aic:` recording rules and names inside strings of other words are not metrics.
        if !word_start {
            continue;
        }
        let mut sel = Selector {
            metric: expr[at..end].to_string(),
            matchers: Vec::new(),
        };
        if b.get(end) == Some(&b'{') {
            let close = expr[end..]
                .find('}')
                .map(|c| c + end)
                .expect("closing brace");
            for m in expr[end + 1..close]
                .split(',')
                .filter(|m| !m.trim().is_empty())
            {
                let op = ["=~", "!~", "!=", "="]
                    .into_iter()
                    .find(|op| m.contains(op))
                    .unwrap_or_else(|| panic!("no operator in matcher {m:?} of {expr}"));
                let (label, value) = m.split_once(op).expect("split");
                sel.matchers.push((
                    label.trim().to_string(),
                    op.to_string(),
                    value.trim().trim_matches('"').to_string(),
                ));
            }
            i = close;
        }
        out.push(sel);
    }
    out
}

/// The series of a Prometheus text exposition: family name → label sets.
pub fn exposition(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name_labels, _value) = line.rsplit_once(' ').expect("sample value");
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        let labels = labels
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("label");
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        series.entry(name.to_string()).or_default().push(labels);
    }
    series
}

#[test]
fn the_promql_scanner_finds_names_and_matchers() {
    let s = selectors(
        r#"sum by (app) (rate(aic_executions_total{app=~"$app",outcome="failed"}[5m])) / aic:x:y + max(aic_queue_consumers)"#,
    );
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].metric, "aic_executions_total");
    assert_eq!(
        s[0].matchers,
        vec![
            ("app".into(), "=~".into(), "$app".into()),
            ("outcome".into(), "=".into(), "failed".into())
        ]
    );
    assert_eq!(s[1].metric, "aic_queue_consumers");
    assert!(s[1].matchers.is_empty());
}
