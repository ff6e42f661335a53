//! The instance's metadata tables, read through the Table API as ServiceNow serves them: the
//! table hierarchy (`sys_db_object`, each table's `super_class`) and the data dictionary
//! (`sys_dictionary`: one row per column, under the name of the table that defines it — so an
//! incident's `short_description` is `task`'s — plus one collection row per table with an
//! empty `element`), and the choice lists (`sys_choice`). Only the encoded queries a connector
//! sends are understood: `name=X`, and `nameINa,b` with an optional `^elementISNOTEMPTY` (the
//! choices' further conditions are taken as met).

use serde_json::{Value, json};

/// `(table, parent)`.
const HIERARCHY: &[(&str, &str)] = &[
    ("task", ""),
    ("incident", "task"),
    ("problem", "task"),
    ("change_request", "task"),
    ("sc_request", "task"),
    ("sys_user", ""),
];

/// `(table, column, label, type, mandatory, max length, read-only)`.
type Column = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    u32,
    bool,
);

const DICTIONARY: &[Column] = &[
    ("task", "", "Task", "collection", false, 40, false),
    ("task", "sys_id", "Sys ID", "GUID", false, 32, false),
    ("task", "number", "Number", "string", false, 40, true),
    (
        "task",
        "short_description",
        "Short description",
        "string",
        false,
        160,
        false,
    ),
    (
        "task",
        "description",
        "Description",
        "string",
        false,
        4000,
        false,
    ),
    ("task", "priority", "Priority", "integer", false, 40, false),
    ("task", "state", "State", "integer", false, 40, false),
    (
        "task",
        "assignment_group",
        "Assignment group",
        "reference",
        false,
        32,
        false,
    ),
    (
        "task",
        "correlation_id",
        "Correlation ID",
        "string",
        false,
        100,
        false,
    ),
    (
        "task",
        "due_date",
        "Due date",
        "glide_date_time",
        false,
        40,
        false,
    ),
    ("incident", "", "Incident", "collection", false, 40, false),
    (
        "incident",
        "caller_id",
        "Caller",
        "reference",
        true,
        32,
        false,
    ),
    (
        "incident", "category", "Category", "string", false, 40, false,
    ),
    ("incident", "impact", "Impact", "integer", false, 40, false),
    (
        "incident", "urgency", "Urgency", "integer", false, 40, false,
    ),
    ("problem", "", "Problem", "collection", false, 40, false),
    (
        "problem",
        "cause_notes",
        "Cause notes",
        "string",
        false,
        4000,
        false,
    ),
];

/// `(table, column, value, label, sequence)` of the choice lists (`sys_choice`).
const CHOICES: &[(&str, &str, &str, &str, u32)] = &[
    ("task", "priority", "1", "1 - Critical", 1),
    ("task", "priority", "2", "2 - High", 2),
    ("task", "priority", "3", "3 - Moderate", 3),
    ("task", "priority", "4", "4 - Low", 4),
    ("task", "priority", "5", "5 - Planning", 5),
    ("incident", "urgency", "1", "1 - High", 1),
    ("incident", "urgency", "2", "2 - Medium", 2),
    ("incident", "urgency", "3", "3 - Low", 3),
    ("incident", "impact", "1", "1 - High", 1),
    ("incident", "impact", "2", "2 - Medium", 2),
    ("incident", "impact", "3", "3 - Low", 3),
    ("incident", "category", "inquiry", "Inquiry / Help", 1),
    ("incident", "category", "software", "Software", 2),
    ("incident", "category", "hardware", "Hardware", 3),
    ("incident", "category", "network", "Network", 4),
];

/// The answer to `GET /api/now/table/{table}?sysparm_query=…` for a metadata table; `None`
/// for any other table.
pub(super) fn answer(table: &str, query: Option<&str>, exclude_links: bool) -> Option<Value> {
    let query = query.unwrap_or_default();
    let result: Vec<Value> = match table {
        "sys_db_object" => {
            let name = query.strip_prefix("name=").unwrap_or_default();
            HIERARCHY
                .iter()
                .filter(|(t, _)| *t == name)
                .map(|(t, parent)| json!({"name": t, "super_class.name": parent}))
                .collect()
        }
        "sys_dictionary" => {
            let (names, rest) = query.split_once('^').unwrap_or((query, ""));
            let names: Vec<&str> = names
                .strip_prefix("nameIN")
                .map(|n| n.split(',').collect())
                .unwrap_or_default();
            let columns_only = rest == "elementISNOTEMPTY";
            DICTIONARY
                .iter()
                .filter(|c| names.contains(&c.0) && !(columns_only && c.1.is_empty()))
                .map(|c| row(c, exclude_links))
                .collect()
        }
        "sys_choice" => {
            let names: Vec<&str> = query
                .split('^')
                .next()
                .and_then(|n| n.strip_prefix("nameIN"))
                .map(|n| n.split(',').collect())
                .unwrap_or_default();
            CHOICES
                .iter()
                .filter(|c| names.contains(&c.0))
                .map(|(table, element, value, label, sequence)| {
                    json!({"name": table, "element": element, "value": value, "label": label,
                        "sequence": sequence.to_string(), "inactive": "false", "language": "en"})
                })
                .collect()
        }
        _ => return None,
    };
    Some(json!({ "result": result }))
}

/// A dictionary row; every value a string, `internal_type` a reference unless links are
/// excluded.
fn row(c: &Column, exclude_links: bool) -> Value {
    let (table, element, label, kind, mandatory, max_length, read_only) = *c;
    let internal_type = if exclude_links {
        json!(kind)
    } else {
        json!({"link": format!("https://sandbox.service-now.com/api/now/table/sys_glide_object?name={kind}"), "value": kind})
    };
    json!({"name": table, "element": element, "column_label": label,
        "internal_type": internal_type, "mandatory": mandatory.to_string(),
        "max_length": max_length.to_string(), "read_only": read_only.to_string()})
}
