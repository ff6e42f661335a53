//! Checking and coercing a caller's parameter values against an automation's parameter table,
//! and building the vendor body from them. Runs before any vendor call: a bad value never
//! reaches the vendor.

use aic_proto::{ExecutionErrorCode, ParameterLocation, ParameterSpec, ParameterType, Transform};
use chrono::{DateTime, Datelike, NaiveDate};
use serde_json::{Map, Number, Value, json};
use std::collections::BTreeMap;

/// A parameter problem, naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// `missing_parameter`, `invalid_parameter` or `unknown_parameter`.
    pub code: ExecutionErrorCode,
    /// The parameter at fault.
    pub parameter: String,
    /// A sentence naming it and what was expected.
    pub message: String,
}

fn invalid(spec: &ParameterSpec, expected: &str, got: &Value) -> ParamError {
    ParamError {
        code: ExecutionErrorCode::InvalidParameter,
        parameter: spec.name.clone(),
        message: format!(
            "parameter '{}' must be {expected}, got {}",
            spec.name,
            describe(got)
        ),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A validated request: the JSON body and the values of the path's placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The vendor body.
    pub body: Value,
    /// Placeholder name → raw value (percent-encoded by [`render_path`]).
    pub path: BTreeMap<String, String>,
}

/// Validates `values` against `specs` and returns the vendor body (targets as dotted paths).
pub fn build_body(
    specs: &[ParameterSpec],
    values: &Map<String, Value>,
) -> Result<Value, ParamError> {
    build(specs, values).map(|b| b.body)
}

/// Validates `values` against `specs` and places each value in the body or the path.
pub fn build(specs: &[ParameterSpec], values: &Map<String, Value>) -> Result<Built, ParamError> {
    if let Some(unknown) = values.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        let known: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(ParamError {
            code: ExecutionErrorCode::UnknownParameter,
            parameter: unknown.clone(),
            message: format!(
                "parameter '{unknown}' is not defined by this automation (known: {})",
                known.join(", ")
            ),
        });
    }
    let mut body = Map::new();
    let mut path = BTreeMap::new();
    for spec in specs {
        match values.get(&spec.name) {
            None | Some(Value::Null) if spec.required => {
                return Err(ParamError {
                    code: ExecutionErrorCode::MissingParameter,
                    parameter: spec.name.clone(),
                    message: format!("required parameter '{}' is missing", spec.name),
                });
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                let value = transform(spec.transform, coerce(spec, v)?);
                match spec.location {
                    ParameterLocation::Path => {
                        let text = match &value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if text.trim().is_empty() {
                            return Err(ParamError {
                                code: ExecutionErrorCode::InvalidParameter,
                                parameter: spec.name.clone(),
                                message: format!("parameter '{}' must not be blank", spec.name),
                            });
                        }
                        path.insert(spec.target.clone(), text);
                    }
                    ParameterLocation::Body if spec.target == "*" => match value {
                        Value::Object(m) => body.extend(m),
                        other => return Err(invalid(spec, "a JSON object", &other)),
                    },
                    ParameterLocation::Body => insert_path(&mut body, &spec.target, value),
                }
            }
        }
    }
    Ok(Built {
        body: Value::Object(body),
        path,
    })
}

/// The vendor request an execution sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Method.
    pub method: aic_proto::HttpMethod,
    /// Path under the instance, placeholders filled.
    pub path: String,
    /// JSON body.
    pub body: Value,
}

/// Builds the request `definition` sends for `values`, keyed by `execution` where the action
/// deduplicates: a Salesforce create with an external id field becomes an upsert on that field
/// (whatever delivers it again finds the same record), a ServiceNow create carries the
/// execution as its correlation id.
#[inline]
pub fn request(
    definition: &aic_proto::AutomationDefinition,
    values: &Map<String, Value>,
    execution: aic_proto::ExecutionId,
) -> Result<Request, ParamError> {
    let built = build(&definition.parameters, values)?;
    let mut path = render_path(&definition.path, &built.path);
    let mut method = definition.method;
    if let Some(aic_proto::Dedupe::SalesforceExternalId { field }) = &definition.dedupe {
        path = format!("{}/{field}/{execution}", path.trim_end_matches('/'));
        method = aic_proto::HttpMethod::Patch;
    }
    let mut body = built.body;
    if definition.dedupe == Some(aic_proto::Dedupe::ServicenowCorrelationId) {
        body["correlation_id"] = Value::String(execution.to_string());
    }
    Ok(Request { method, path, body })
}

/// Fills `{name}` placeholders, percent-encoding each value as one path segment (a value can
/// never add segments or climb with `..`).
pub fn render_path(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        let encoded: String = value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b'.' if value != "." && value != ".." => ".".into(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        out = out.replace(&format!("{{{name}}}"), &encoded);
    }
    out
}

/// Plain text as an Atlassian Document Format document: one paragraph per non-empty line.
pub fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| json!({"type": "paragraph", "content": [{"type": "text", "text": l}]}))
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

fn transform(t: Option<Transform>, v: Value) -> Value {
    match t {
        None => v,
        Some(Transform::Adf) => match &v {
            Value::String(s) => adf(s),
            _ => v,
        },
        Some(Transform::KeyObject) => json!({"key": v}),
        Some(Transform::NameObject) => json!({"name": v}),
        Some(Transform::IdObject) => json!({"id": v}),
        Some(Transform::AccountIdObject) => json!({"accountId": v}),
    }
}

fn coerce(spec: &ParameterSpec, v: &Value) -> Result<Value, ParamError> {
    let out = convert(spec.kind, v).map_err(|expected| invalid(spec, expected, v))?;
    within(spec, &out)?;
    if let (Some(max), Value::String(s)) = (spec.max_length, &out) {
        let len = s.chars().count();
        if len > max as usize {
            return Err(ParamError {
                code: ExecutionErrorCode::InvalidParameter,
                parameter: spec.name.clone(),
                message: format!(
                    "parameter '{}' is {len} characters long; at most {max} are accepted",
                    spec.name
                ),
            });
        }
    }
    Ok(out)
}

/// Refuses a value (`out`, converted) beyond the parameter's bounds or not among its allowed
/// values, saying which are accepted.
fn within(spec: &ParameterSpec, out: &Value) -> Result<(), ParamError> {
    use std::cmp::Ordering::{Greater, Less};
    if let Value::Number(n) = out {
        let beyond = [
            (&spec.minimum, Less, "at least"),
            (&spec.maximum, Greater, "at most"),
        ];
        for (bound, side, words) in beyond {
            if let Some(b) = bound
                .as_ref()
                .filter(|b| aic_proto::whole::cmp(n, b) == side)
            {
                return Err(invalid(spec, &format!("{words} {b}"), out));
            }
        }
    }
    if spec.allowed_values.is_empty() {
        return Ok(());
    }
    let allowed = |s: &Value| {
        s.as_str()
            .is_some_and(|s| spec.allowed_values.iter().any(|a| a == s))
    };
    let (bad, whose) = match out {
        Value::Array(items) => (items.iter().find(|i| !allowed(i)), "each item of "),
        _ => (Some(out).filter(|v| !allowed(v)), ""),
    };
    match bad {
        None => Ok(()),
        Some(bad) => Err(ParamError {
            code: ExecutionErrorCode::InvalidParameter,
            parameter: spec.name.clone(),
            message: format!(
                "{whose}parameter '{}' must be one of {}, got {}",
                spec.name,
                quoted_list(&spec.allowed_values),
                describe(bad)
            ),
        }),
    }
}

/// `'a', 'b', 'c'`, the first ten of a longer list followed by how many there are.
fn quoted_list(values: &[String]) -> String {
    let shown: Vec<String> = values.iter().take(10).map(|v| format!("'{v}'")).collect();
    match values.len() {
        n if n > 10 => format!("{}, … ({n} in all)", shown.join(", ")),
        _ => shown.join(", "),
    }
}

/// `v` as a whole number: a number or its text, as [`aic_proto::whole::number`] takes it.
fn integer(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => aic_proto::whole::number(n),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Some(Number::from(i)),
            Err(_) => s
                .trim()
                .parse::<Number>()
                .ok()
                .and_then(|n| aic_proto::whole::number(&n)),
        },
        _ => None,
    }
}

/// `v` as a value of `kind`, converted where that loses nothing, or what was expected.
fn convert(kind: ParameterType, v: &Value) -> Result<Value, &'static str> {
    Ok(match (kind, v) {
        (ParameterType::String, Value::String(_)) => v.clone(),
        // A number where text is expected (a phone, a postcode) converts without loss.
        (ParameterType::String, Value::Number(n)) => Value::String(n.to_string()),
        (ParameterType::String, _) => return Err("a string"),
        (ParameterType::Email, Value::String(s)) if is_email(s) => v.clone(),
        (ParameterType::Email, _) => return Err("an e-mail address"),
        (ParameterType::Integer, _) => match integer(v) {
            Some(n) => Value::Number(n),
            None => return Err("a whole number"),
        },
        (ParameterType::Number, Value::Number(_)) => v.clone(),
        (ParameterType::Number, Value::String(s)) => {
            match s.trim().parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => return Err("a number"),
            }
        }
        (ParameterType::Number, _) => return Err("a number"),
        (ParameterType::Boolean, Value::Bool(_)) => v.clone(),
        (ParameterType::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Value::Bool(s == "true")
        }
        (ParameterType::Boolean, _) => return Err("true or false"),
        // Sent as every vendor reads a date (`2026-02-03`), whatever padding or sign it came
        // with (`2026-2-3`, `+2026-02-03`), and within the years four digits write.
        (ParameterType::Date, Value::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) if (1..=9999).contains(&d.year()) => {
                Value::String(d.format("%Y-%m-%d").to_string())
            }
            _ => return Err("a date (YYYY-MM-DD)"),
        },
        (ParameterType::Date, _) => return Err("a date (YYYY-MM-DD)"),
        // RFC 3339 allows a lower-case `t` and `z` and a space between date and time; the
        // vendors' parsers read the upper-case `T` form alone.
        (ParameterType::DateTime, Value::String(s)) if DateTime::parse_from_rfc3339(s).is_ok() => {
            Value::String(s.to_ascii_uppercase().replacen(' ', "T", 1))
        }
        (ParameterType::DateTime, _) => return Err("a date-time (RFC 3339)"),
        (ParameterType::StringList, Value::Array(items)) if items.iter().all(Value::is_string) => {
            v.clone()
        }
        (ParameterType::StringList, Value::String(s)) => Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.into()))
                .collect(),
        ),
        (ParameterType::StringList, _) => return Err("a list of strings"),
        (ParameterType::Json, Value::Array(_) | Value::Object(_)) => v.clone(),
        // Flows often carry JSON as text: accept it when it parses to an array or object.
        (ParameterType::Json, Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Array(_) | Value::Object(_))) => parsed,
            _ => return Err("a JSON array or object"),
        },
        (ParameterType::Json, _) => return Err("a JSON array or object"),
    })
}

/// Whether `s` is an address a vendor's e-mail field takes (an `email` parameter's value, an
/// account's address in a connection's secrets): a local part of 1 to 64 characters without white
/// space, dots at its ends or two together, and a domain of two or more labels, each of
/// letters (any script), digits and inner hyphens — 254 characters in all at most (RFC 5321).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=64).contains(&local.chars().count())
        && s.chars().count() <= 254
        && !local.contains(['@', '"'])
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.split('.').count() >= 2
        && domain.split('.').all(label)
}

fn insert_path(body: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            body.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let child = body
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
