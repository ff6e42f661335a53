//! Checking and coercing a caller's parameter values against an automation's parameter table,
//! and building the vendor body from them. Runs before any vendor call: a bad value never
//! reaches the vendor.

use aic_proto::{ExecutionErrorCode, ParameterLocation, ParameterSpec, ParameterType, Transform};
use chrono::{DateTime, NaiveDate};
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

/// `v` as a value of `kind`, converted where that loses nothing, or what was expected.
fn convert(kind: ParameterType, v: &Value) -> Result<Value, &'static str> {
    Ok(match (kind, v) {
        (ParameterType::String, Value::String(_)) => v.clone(),
        // A number where text is expected (a phone, a postcode) converts without loss.
        (ParameterType::String, Value::Number(n)) => Value::String(n.to_string()),
        (ParameterType::String, _) => return Err("a string"),
        (ParameterType::Email, Value::String(s)) if looks_like_email(s) => v.clone(),
        (ParameterType::Email, _) => return Err("an e-mail address"),
        (ParameterType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
        (ParameterType::Integer, Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Value::Number(i.into()),
            Err(_) => return Err("a whole number"),
        },
        (ParameterType::Integer, _) => return Err("a whole number"),
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
        (ParameterType::Date, Value::String(s))
            if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() =>
        {
            v.clone()
        }
        (ParameterType::Date, _) => return Err("a date (YYYY-MM-DD)"),
        (ParameterType::DateTime, Value::String(s)) if DateTime::parse_from_rfc3339(s).is_ok() => {
            v.clone()
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

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
        && !domain.contains('@')
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
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, kind: ParameterType, required: bool) -> ParameterSpec {
        ParameterSpec {
            name: name.into(),
            kind,
            target: name.into(),
            required,
            description: String::new(),
            max_length: Some(10),
            location: ParameterLocation::Body,
            transform: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn values_are_coerced_and_placed_at_their_targets() {
        let mut nested = spec("summary", ParameterType::String, true);
        nested.target = "fields.summary".into();
        let specs = [
            nested,
            spec("n", ParameterType::Integer, false),
            spec("b", ParameterType::Boolean, false),
        ];
        let body =
            build_body(&specs, &obj(json!({"summary":"hi","n":"42","b":"true"}))).expect("valid");
        assert_eq!(body, json!({"fields":{"summary":"hi"},"n":42,"b":true}));
    }

    #[test]
    fn numbers_reach_the_vendor_with_the_digits_they_were_sent_with() {
        // Parsed as the worker parses a request, then written as it writes the vendor's body.
        // Without serde_json's `float_roundtrip` the first became 10587.436593658977 and the
        // second 1.0 (serde-rs/json#707, #1303): an amount changed on its way through.
        let sent = r#"{"Amount": 10587.436593658975, "Share": 0.9999999999999999, "Note": 122.416294033786585}"#;
        let values: Map<String, Value> = serde_json::from_str(sent).expect("valid JSON");
        let specs = [
            spec("Amount", ParameterType::Number, true),
            spec("Share", ParameterType::Number, true),
            ParameterSpec {
                max_length: None,
                ..spec("Note", ParameterType::String, true)
            },
        ];
        let body = serde_json::to_string(&build_body(&specs, &values).expect("valid"))
            .expect("serialises");
        assert_eq!(
            body,
            r#"{"Amount":10587.436593658975,"Note":"122.41629403378658","Share":0.9999999999999999}"#
        );
    }

    #[test]
    fn a_missing_required_parameter_is_named() {
        let e =
            build_body(&[spec("Company", ParameterType::String, true)], &Map::new()).unwrap_err();
        assert_eq!(e.code, ExecutionErrorCode::MissingParameter);
        assert_eq!(e.parameter, "Company");
        assert!(e.message.contains("'Company'"));
    }

    #[test]
    fn a_number_for_a_date_is_refused_with_the_expected_format() {
        let e = build_body(
            &[spec("CloseDate", ParameterType::Date, true)],
            &obj(json!({"CloseDate": 20260101})),
        )
        .unwrap_err();
        assert_eq!(e.code, ExecutionErrorCode::InvalidParameter);
        assert_eq!(
            e.message,
            "parameter 'CloseDate' must be a date (YYYY-MM-DD), got the number 20260101"
        );
    }

    #[test]
    fn an_impossible_calendar_date_is_refused() {
        let e = build_body(
            &[spec("d", ParameterType::Date, true)],
            &obj(json!({"d":"2026-02-30"})),
        )
        .unwrap_err();
        assert_eq!(e.parameter, "d");
    }

    #[test]
    fn unknown_parameters_and_long_strings_are_refused() {
        let specs = [spec("a", ParameterType::String, false)];
        assert_eq!(
            build_body(&specs, &obj(json!({"zz":1}))).unwrap_err().code,
            ExecutionErrorCode::UnknownParameter
        );
        let e = build_body(&specs, &obj(json!({"a":"01234567890"}))).unwrap_err();
        assert!(e.message.contains("at most 10"), "{}", e.message);
    }

    #[test]
    fn path_values_are_one_encoded_segment() {
        let mut table = spec("table", ParameterType::String, true);
        table.location = ParameterLocation::Path;
        table.max_length = None;
        let built = build(&[table], &obj(json!({"table": "../sys_user/x y"}))).expect("valid");
        assert_eq!(
            render_path("/api/now/table/{table}", &built.path),
            "/api/now/table/..%2Fsys_user%2Fx%20y"
        );
        let only_dots = BTreeMap::from([("t".to_string(), "..".to_string())]);
        assert_eq!(render_path("/a/{t}", &only_dots), "/a/%2E%2E");
    }

    #[test]
    fn plain_text_becomes_adf_and_ids_are_wrapped() {
        let mut desc = spec("d", ParameterType::String, true);
        desc.transform = Some(Transform::Adf);
        desc.max_length = None;
        let mut project = spec("p", ParameterType::String, true);
        project.transform = Some(Transform::KeyObject);
        project.target = "fields.project".into();
        let mut labels = spec("l", ParameterType::StringList, false);
        labels.max_length = None;
        let body = build_body(
            &[desc, project, labels],
            &obj(json!({"d": "one\n\ntwo", "p": "ENG", "l": "a, b"})),
        )
        .expect("valid");
        assert_eq!(
            body["d"],
            json!({"type":"doc","version":1,"content":[
            {"type":"paragraph","content":[{"type":"text","text":"one"}]},
            {"type":"paragraph","content":[{"type":"text","text":"two"}]}]})
        );
        assert_eq!(body["fields"]["project"], json!({"key": "ENG"}));
        assert_eq!(body["l"], json!(["a", "b"]));
    }

    #[test]
    fn json_parameters_accept_structures_or_their_text() {
        let mut blocks = spec("blocks", ParameterType::Json, false);
        blocks.max_length = None;
        let specs = [blocks];
        assert_eq!(
            build_body(&specs, &obj(json!({"blocks": "[{\"type\":\"divider\"}]"}))).expect("ok")["blocks"]
                [0]["type"],
            "divider"
        );
        assert!(build_body(&specs, &obj(json!({"blocks": "not json"}))).is_err());
    }

    #[test]
    fn emails_are_checked() {
        let specs = [spec("e", ParameterType::Email, true)];
        assert!(build_body(&specs, &obj(json!({"e":"a@b.io"}))).is_ok());
        for bad in ["a@b", "ab.io", "a @b.io", "@b.io"] {
            assert!(build_body(&specs, &obj(json!({"e":bad}))).is_err(), "{bad}");
        }
    }
}
