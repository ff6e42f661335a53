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
    ("incident", "u_region", "Région", "string", false, 40, false),
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

/// `(table, column, value, label, sequence, language)` of the choice lists (`sys_choice`): an
/// instance keeps one row per language a list is translated to, and a list made on a
/// French-speaking instance may have French rows only (`u_region`).
const CHOICES: &[(&str, &str, &str, &str, u32, &str)] = &[
    ("task", "priority", "1", "1 - Critical", 1, "en"),
    ("task", "priority", "2", "2 - High", 2, "en"),
    ("task", "priority", "3", "3 - Moderate", 3, "en"),
    ("task", "priority", "4", "4 - Low", 4, "en"),
    ("task", "priority", "5", "5 - Planning", 5, "en"),
    ("incident", "urgency", "1", "1 - High", 1, "en"),
    ("incident", "urgency", "2", "2 - Medium", 2, "en"),
    ("incident", "urgency", "3", "3 - Low", 3, "en"),
    ("incident", "urgency", "1", "1 - Haute", 1, "fr"),
    ("incident", "urgency", "2", "2 - Moyenne", 2, "fr"),
    ("incident", "urgency", "3", "3 - Basse", 3, "fr"),
    ("incident", "impact", "1", "1 - High", 1, "en"),
    ("incident", "impact", "2", "2 - Medium", 2, "en"),
    ("incident", "impact", "3", "3 - Low", 3, "en"),
    ("incident", "category", "inquiry", "Inquiry / Help", 1, "en"),
    ("incident", "category", "software", "Software", 2, "en"),
    ("incident", "category", "hardware", "Hardware", 3, "en"),
    ("incident", "category", "network", "Network", 4, "en"),
    ("incident", "u_region", "nord", "Nord", 1, "fr"),
    ("incident", "u_region", "sud", "Sud", 2, "fr"),
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
            // A `language=` condition keeps that language's rows only, as the Table API does.
            let language = query.split('^').find_map(|c| c.strip_prefix("language="));
            CHOICES
                .iter()
                .filter(|c| names.contains(&c.0) && language.is_none_or(|l| l == c.5))
                .map(|(table, element, value, label, sequence, language)| {
                    json!({"name": table, "element": element, "value": value, "label": label,
                        "sequence": sequence.to_string(), "inactive": "false", "language": language})
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
