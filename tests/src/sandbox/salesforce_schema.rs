//! The sandbox org's sObject describe: fields, types, limits and required flags of the standard
//! objects the seed's automations create, served as `…/sobjects/{sobject}/describe`, and
//! Salesforce's validation of a create against them (in its order: unknown fields, then
//! required fields, then field values).

use super::SandboxState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Text(usize),
    Email,
    Date,
    /// An `int` of so many digits (NumberOfEmployees: 8); a Java `int` on the wire.
    Integer(u32),
    Double,
    Reference(&'static str),
    Picklist(&'static [&'static str]),
}

#[derive(Debug)]
pub(super) struct Field {
    name: &'static str,
    label: &'static str,
    kind: Kind,
    required: bool,
}

#[derive(Debug)]
pub(super) struct Schema {
    pub prefix: &'static str,
    fields: &'static [Field],
}

const fn f(name: &'static str, label: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        label,
        kind,
        required,
    }
}

const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

const LEAD: Schema = Schema {
    prefix: "00Q",
    fields: &[
        f("LastName", "Last Name", Kind::Text(80), true),
        f("FirstName", "First Name", Kind::Text(40), false),
        f("Company", "Company", Kind::Text(255), true),
        f("Email", "Email", Kind::Email, false),
        f("Phone", "Phone", Kind::Text(40), false),
        f("Title", "Title", Kind::Text(128), false),
        f("LeadSource", "Lead Source", Kind::Text(255), false),
        f("Website", "Website", Kind::Text(255), false),
        f("NumberOfEmployees", "Employees", Kind::Integer(8), false),
        f("AnnualRevenue", "Annual Revenue", Kind::Double, false),
        f("Description", "Description", Kind::Text(32000), false),
        f("Status", "Status", Kind::Text(255), false),
    ],
};

const CONTACT: Schema = Schema {
    prefix: "003",
    fields: &[
        f("LastName", "Last Name", Kind::Text(80), true),
        f("FirstName", "First Name", Kind::Text(40), false),
        f("Email", "Email", Kind::Email, false),
        f("Phone", "Phone", Kind::Text(40), false),
        f("Title", "Title", Kind::Text(128), false),
        f("AccountId", "Account ID", Kind::Reference("001"), false),
        f("Description", "Description", Kind::Text(32000), false),
    ],
};

const ACCOUNT: Schema = Schema {
    prefix: "001",
    fields: &[
        f("Name", "Account Name", Kind::Text(255), true),
        f("Industry", "Industry", Kind::Text(255), false),
        f("Phone", "Phone", Kind::Text(40), false),
        f("Website", "Website", Kind::Text(255), false),
    ],
};

const OPPORTUNITY: Schema = Schema {
    prefix: "006",
    fields: &[
        f("Name", "Name", Kind::Text(120), true),
        f("StageName", "Stage", Kind::Picklist(STAGES), true),
        f("CloseDate", "Close Date", Kind::Date, true),
        f("Amount", "Amount", Kind::Double, false),
        f("AccountId", "Account ID", Kind::Reference("001"), false),
        f("Description", "Description", Kind::Text(32000), false),
    ],
};

const QUOTE: Schema = Schema {
    prefix: "0Q0",
    fields: &[
        f("Name", "Quote Name", Kind::Text(255), true),
        f(
            "OpportunityId",
            "Opportunity ID",
            Kind::Reference("006"),
            true,
        ),
        f("ExpirationDate", "Expiration Date", Kind::Date, false),
        f("Description", "Description", Kind::Text(32000), false),
    ],
};

pub(super) fn schema(sobject: &str) -> Option<&'static Schema> {
    match sobject {
        "Lead" => Some(&LEAD),
        "Contact" => Some(&CONTACT),
        "Account" => Some(&ACCOUNT),
        "Opportunity" => Some(&OPPORTUNITY),
        "Quote" => Some(&QUOTE),
        _ => None,
    }
}

/// `GET …/sobjects/{sobject}/describe`, as Salesforce answers it (the parts a connector
/// reads): every field, with the system fields no create may set.
pub(super) fn describe(sobject: &str, schema: &Schema) -> Value {
    let system = |name: &str, label: &str, kind: &str| {
        json!({"name": name, "label": label, "type": kind, "length": if kind == "id" { 18 } else { 0 },
            "createable": false, "updateable": false, "nillable": false, "defaultedOnCreate": true,
            "picklistValues": [], "referenceTo": []})
    };
    let mut fields = vec![system("Id", &format!("{sobject} ID"), "id")];
    fields.extend(schema.fields.iter().map(|f| {
        let digits = match f.kind {
            Kind::Integer(digits) => digits,
            _ => 0,
        };
        let (kind, length, values, to): (&str, usize, &[&str], Option<&str>) = match f.kind {
            Kind::Text(n) if n > 255 => ("textarea", n, &[], None),
            Kind::Text(n) => ("string", n, &[], None),
            Kind::Email => ("email", 80, &[], None),
            Kind::Date => ("date", 0, &[], None),
            Kind::Integer(_) => ("int", 0, &[], None),
            Kind::Double => ("double", 0, &[], None),
            Kind::Reference(prefix) => ("reference", 18, &[], Some(prefix)),
            Kind::Picklist(values) => ("picklist", 255, values, None),
        };
        json!({"name": f.name, "label": f.label, "type": kind, "length": length,
            "digits": digits, "createable": true, "updateable": true, "nillable": !f.required,
            "defaultedOnCreate": false,
            "picklistValues": values.iter().map(|v| json!({"value": v, "label": v, "active": true, "defaultValue": false})).collect::<Vec<_>>(),
            "referenceTo": to.map(referenced).into_iter().collect::<Vec<_>>()})
    }));
    fields.push(system("CreatedDate", "Created Date", "datetime"));
    json!({"name": sobject, "label": sobject, "createable": true, "fields": fields})
}

/// `GET /services/data/{version}/sobjects/{sobject}/describe`.
pub(super) async fn serve_describe(
    State(s): State<Arc<SandboxState>>,
    Path((_version, sobject)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    super::salesforce::with_limits(&s, &headers, || match schema(&sobject) {
        Some(found) => (StatusCode::OK, describe(&sobject, found)),
        None => super::salesforce::errors(
            StatusCode::NOT_FOUND,
            vec![super::salesforce::error(
                "NOT_FOUND",
                "The requested resource does not exist".into(),
                &[],
            )],
        ),
    })
}

/// The sObject whose ids start with `prefix`.
fn referenced(prefix: &str) -> &'static str {
    match prefix {
        "001" => "Account",
        "006" => "Opportunity",
        _ => "Contact",
    }
}

fn err(code: &str, message: String, fields: &[&str]) -> Value {
    json!({"message": message, "errorCode": code, "fields": fields})
}

fn blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_parser(kind: &str, v: &Value) -> Value {
    let token = match v {
        Value::String(_) => "VALUE_STRING",
        Value::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(_) => "VALUE_TRUE",
        Value::Array(_) => "START_ARRAY",
        _ => "START_OBJECT",
    };
    json!({"message": format!("Cannot deserialize instance of {kind} from {token} value {v} or request may be missing a required field at [line:1, column:1]"), "errorCode": "JSON_PARSER_ERROR"})
}

fn is_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Validates a create, returning Salesforce's error array on refusal.
pub(super) fn validate(
    schema: &Schema,
    sobject: &str,
    body: &Map<String, Value>,
    exists: &dyn Fn(&str) -> bool,
) -> Result<(), Vec<Value>> {
    known_fields(schema, sobject, body)?;
    typed(schema, body)?;
    required(schema, body)?;
    values(schema, body, exists)
}

/// Refuses a field the sobject does not have, or one no one may set (`Id`).
fn known_fields(
    schema: &Schema,
    sobject: &str,
    body: &Map<String, Value>,
) -> Result<(), Vec<Value>> {
    for name in body.keys() {
        if name == "Id" {
            return Err(vec![
                json!({"message": "Unable to create/update fields: Id. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": ["Id"]}),
            ]);
        }
        if !schema.fields.iter().any(|f| f.name == name) {
            return Err(vec![
                json!({"message": format!("No such column '{name}' on sobject of type {sobject}"), "errorCode": "INVALID_FIELD"}),
            ]);
        }
    }
    Ok(())
}

/// Refuses a value of the wrong JSON type for its field.
fn typed(schema: &Schema, body: &Map<String, Value>) -> Result<(), Vec<Value>> {
    // Type errors surface from the JSON deserializer before anything else.
    for field in schema.fields {
        let Some(v) = body.get(field.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let bad = match field.kind {
            Kind::Date => v
                .as_str()
                .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .is_none(),
            // Beyond a Java `int` the deserializer refuses it.
            Kind::Integer(_) => {
                !(v.as_i64().is_some_and(|i| i32::try_from(i).is_ok())
                    || v.as_str().is_some_and(|s| s.parse::<i32>().is_ok()))
            }
            Kind::Double => {
                !(v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()))
            }
            _ => as_text(v).is_none(),
        };
        if bad {
            let kind = match field.kind {
                Kind::Date => "date",
                Kind::Integer(_) => "int",
                Kind::Double => "double",
                _ => "string",
            };
            return Err(vec![json_parser(kind, v)]);
        }
    }
    Ok(())
}

/// Refuses a record without its required fields.
fn required(schema: &Schema, body: &Map<String, Value>) -> Result<(), Vec<Value>> {
    let missing: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| f.required && blank(body.get(f.name)))
        .map(|f| f.name)
        .collect();
    if !missing.is_empty() {
        return Err(vec![err(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        )]);
    }
    Ok(())
}

/// Every value its field refuses: too long, not an e-mail address, not in the picklist, not
/// an id of the referenced sobject, or of no record.
fn values(
    schema: &Schema,
    body: &Map<String, Value>,
    exists: &dyn Fn(&str) -> bool,
) -> Result<(), Vec<Value>> {
    let mut problems = Vec::new();
    for field in schema.fields {
        let Some(text) = body.get(field.name).and_then(as_text) else {
            continue;
        };
        match field.kind {
            Kind::Text(max) if text.chars().count() > max => problems.push(err(
                "STRING_TOO_LONG",
                format!(
                    "{}: data value too large: {} (max length={max})",
                    field.label,
                    text.chars().take(60).collect::<String>()
                ),
                &[field.name],
            )),
            Kind::Email if !valid_email(&text) => problems.push(err(
                "INVALID_EMAIL_ADDRESS",
                format!("{}: invalid email address: {text}", field.label),
                &[field.name],
            )),
            Kind::Picklist(values) if !values.contains(&text.as_str()) => problems.push(err(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{}: bad value for restricted picklist field: {text}",
                    field.label
                ),
                &[field.name],
            )),
            Kind::Integer(digits)
                if text
                    .parse::<i64>()
                    .is_ok_and(|i| i.unsigned_abs() >= 10u64.pow(digits)) =>
            {
                problems.push(err(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    format!(
                        "{}: value outside of valid range on numeric field: {text}",
                        field.label
                    ),
                    &[field.name],
                ))
            }
            Kind::Reference(prefix) if !(is_id(&text) && text.starts_with(prefix)) => problems
                .push(err(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {text}", field.label),
                    &[field.name],
                )),
            Kind::Reference(_) if !exists(&text) => problems.push(err(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id".into(),
                &[field.name],
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn valid_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty()
            && d.contains('.')
            && !d.starts_with('.')
            && !d.ends_with('.')
            && !s.contains(' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sobject: &str, body: Value) -> Result<(), Vec<Value>> {
        let m = body.as_object().cloned().unwrap_or_default();
        validate(
            schema(sobject).expect("known sobject"),
            sobject,
            &m,
            &|_| false,
        )
    }

    #[test]
    fn blank_required_fields_are_listed_together() {
        let e = run("Lead", json!({"LastName": "", "Company": "  "})).unwrap_err();
        assert_eq!(e[0]["errorCode"], "REQUIRED_FIELD_MISSING");
        assert_eq!(
            e[0]["message"],
            "Required fields are missing: [LastName, Company]"
        );
        assert_eq!(e[0]["fields"], json!(["LastName", "Company"]));
    }

    #[test]
    fn unknown_fields_and_bad_values_use_salesforce_codes() {
        assert_eq!(
            run("Lead", json!({"Foo__c": 1})).unwrap_err()[0]["errorCode"],
            "INVALID_FIELD"
        );
        assert_eq!(
            run(
                "Lead",
                json!({"LastName": "a", "Company": "b", "Email": "nope"})
            )
            .unwrap_err()[0]["errorCode"],
            "INVALID_EMAIL_ADDRESS"
        );
        assert_eq!(
            run(
                "Opportunity",
                json!({"Name": "a", "StageName": "Prospecting", "CloseDate": 20260101})
            )
            .unwrap_err()[0]["errorCode"],
            "JSON_PARSER_ERROR"
        );
        assert_eq!(
            run(
                "Opportunity",
                json!({"Name": "a", "StageName": "Nope", "CloseDate": "2026-01-01"})
            )
            .unwrap_err()[0]["errorCode"],
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        );
        assert_eq!(
            run("Quote", json!({"Name": "a", "OpportunityId": "xyz"})).unwrap_err()[0]["errorCode"],
            "MALFORMED_ID"
        );
    }

    #[test]
    fn an_int_beyond_its_digits_or_a_java_int_is_refused() {
        let lead = |n: Value| {
            run(
                "Lead",
                json!({"LastName": "a", "Company": "b", "NumberOfEmployees": n}),
            )
        };
        assert!(lead(json!(99_999_999)).is_ok());
        assert!(lead(json!("-99999999")).is_ok());
        let e = lead(json!(100_000_000)).unwrap_err();
        assert_eq!(
            (&e[0]["errorCode"], &e[0]["message"], &e[0]["fields"]),
            (
                &json!("NUMBER_OUTSIDE_VALID_RANGE"),
                &json!("Employees: value outside of valid range on numeric field: 100000000"),
                &json!(["NumberOfEmployees"])
            )
        );
        assert_eq!(
            lead(json!(2_147_483_648u64)).unwrap_err()[0]["errorCode"],
            "JSON_PARSER_ERROR"
        );
    }
}
