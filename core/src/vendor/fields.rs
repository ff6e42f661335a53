//! What a vendor's object can be given on create, read from the vendor itself: the fields an
//! admin maps parameters to ("the data of the app you integrate with"), with their labels,
//! types, lengths, allowed values, and whether this org or instance requires them — custom
//! fields included, which no catalogue can know.
//!
//! Salesforce describes an sObject (`GET …/sobjects/{object}/describe`: a field is required on
//! create when it is `createable && !nillable && !defaultedOnCreate`). ServiceNow's dictionary
//! holds a table's columns, inherited ones under its parent tables' names, so the table's
//! ancestry is read first (`sys_db_object`'s `super_class`), and its choice lists
//! (`sys_choice`) give the pick-lists' values. Jira's create metadata belongs to a
//! project and an issue type (`…/createmeta/{project}/issuetypes/{id}`, paged), the type found
//! by name first. Slack's message has fixed fields: the catalogue's template is the answer.

use super::{AccessToken, Vendor, VendorFailure, get, salesforce};
use crate::egress::EgressPolicy;
use aic_proto::ParameterType;
use serde_json::Value;

/// One field of a vendor object, as the vendor describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct VendorField {
    /// Its API name: a parameter's `target`.
    pub name: String,
    /// Its label in the vendor's UI.
    pub label: String,
    /// The vendor's own type name (`picklist`, `reference`, `glide_date`…).
    pub vendor_type: String,
    /// The parameter type that carries it.
    pub parameter_type: ParameterType,
    /// Whether a create without it is refused.
    pub required: bool,
    /// Its maximum length, for text.
    pub max_length: Option<u32>,
    /// Its range, for a whole number the vendor bounds (Salesforce's `digits`, ServiceNow's
    /// 32-bit `integer`).
    pub range: Option<(i64, i64)>,
    /// Its allowed values, for a pick-list.
    pub values: Vec<String>,
}

/// What to describe.
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    /// A Salesforce sObject or a ServiceNow table, by API name.
    Named(&'a str),
    /// A Jira issue type of a project (key or id), the type by name or id.
    JiraIssue {
        /// Project key or id.
        project: &'a str,
        /// Issue type name or id.
        issue_type: &'a str,
    },
}

/// What a describe named that the vendor does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// The Salesforce sObject or the ServiceNow table.
    Object,
    /// The Jira project.
    Project,
    /// The issue type, among the Jira project's.
    IssueType,
}

/// Why a vendor could not describe what was asked.
#[derive(Clone, Debug)]
pub enum DescribeError {
    /// What was named is not there (the vendor's 404, or no such table or issue type among
    /// those it lists): the asker's to mend, not a fault of the vendor or the connection.
    Missing(Named, VendorFailure),
    /// Any other failure: the credentials, the vendor, the network.
    Failed(VendorFailure),
}

impl DescribeError {
    /// The failure, whatever its kind.
    pub fn failure(&self) -> &VendorFailure {
        match self {
            Self::Missing(_, f) | Self::Failed(f) => f,
        }
    }

    /// `Missing(named)` when the vendor answered 404 to what was named.
    pub(super) fn missing_when_absent(named: Named) -> impl FnOnce(VendorFailure) -> Self {
        move |f| {
            let absent = f
                .vendor
                .as_ref()
                .is_some_and(|v| v.http_status == Some(404));
            if absent {
                Self::Missing(named, f)
            } else {
                Self::Failed(f)
            }
        }
    }
}

impl From<VendorFailure> for DescribeError {
    fn from(f: VendorFailure) -> Self {
        Self::Failed(f)
    }
}

/// Whether the vendor describes its objects' fields (else the catalogue's template does).
pub fn describes(vendor: Vendor) -> bool {
    matches!(vendor, Vendor::Salesforce | Vendor::ServiceNow)
}

/// The object a template's path creates: the segment after `sobjects/` (Salesforce) or
/// `table/` (ServiceNow), unless it is a placeholder.
pub fn object_of(vendor: Vendor, path: &str) -> Option<&str> {
    let marker = match vendor {
        Vendor::Salesforce => "sobjects",
        Vendor::ServiceNow => "table",
        Vendor::Jira | Vendor::Slack => return None,
    };
    let mut segments = path.split('/').skip_while(|s| *s != marker).skip(1);
    segments.next().filter(|s| valid_object(s))
}

/// An object's name as both vendors spell them: a letter, then letters, digits and `_`.
pub fn valid_object(name: &str) -> bool {
    name.len() <= 80
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The fields of `object` that a create may set; `None` for vendors that do not describe them.
pub async fn describe(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    vendor: Vendor,
    token: &AccessToken,
    object: Object<'_>,
) -> Result<Option<Vec<VendorField>>, DescribeError> {
    let object = match object {
        Object::JiraIssue {
            project,
            issue_type,
        } if vendor == Vendor::Jira => {
            return super::jira::create_fields(http, policy, token, project, issue_type)
                .await
                .map(Some);
        }
        Object::Named(name) if valid_object(name) => name,
        _ => {
            let refusal = format!("{object:?} is not an object of this vendor");
            return Err(DescribeError::Missing(
                Named::Object,
                VendorFailure::rejected(refusal),
            ));
        }
    };
    match vendor {
        Vendor::Salesforce => {
            let path = format!(
                "/services/data/{}/sobjects/{object}/describe",
                salesforce::API_VERSION
            );
            let body = get(http, policy, vendor, token, &path)
                .await
                .map_err(DescribeError::missing_when_absent(Named::Object))?;
            Ok(Some(salesforce_fields(&body)))
        }
        Vendor::ServiceNow => {
            let tables = ancestry(http, policy, token, object).await?;
            let path = format!(
                "/api/now/table/sys_dictionary?sysparm_query=nameIN{}^elementISNOTEMPTY\
                 &sysparm_fields=name,element,column_label,internal_type,mandatory,max_length,read_only\
                 &sysparm_exclude_reference_link=true&sysparm_limit=10000",
                tables.join(",")
            );
            let body = get(http, policy, vendor, token, &path).await?;
            let mut fields = servicenow_fields(&body, &tables);
            let path = format!(
                "/api/now/table/sys_choice?sysparm_query=nameIN{}^inactive=false\
                 &sysparm_fields=name,element,value,sequence&sysparm_limit=10000",
                tables.join(",")
            );
            let choices = get(http, policy, vendor, token, &path).await?;
            add_choices(&mut fields, &choices, &tables);
            Ok(Some(fields))
        }
        Vendor::Jira | Vendor::Slack => Ok(None),
    }
}

/// `table` and its parent tables, nearest first (at most eight levels).
async fn ancestry(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    token: &AccessToken,
    table: &str,
) -> Result<Vec<String>, DescribeError> {
    let mut tables = vec![table.to_string()];
    while tables.len() < 8 {
        let path = format!(
            "/api/now/table/sys_db_object?sysparm_query=name={}\
             &sysparm_fields=name,super_class.name&sysparm_limit=1",
            tables[tables.len() - 1]
        );
        let body = get(http, policy, Vendor::ServiceNow, token, &path).await?;
        let row = &body["result"][0];
        if row.is_null() && tables.len() == 1 {
            let refusal = format!("ServiceNow has no table '{table}'");
            return Err(DescribeError::Missing(
                Named::Object,
                VendorFailure::rejected(refusal),
            ));
        }
        match text(&row["super_class.name"]) {
            Some(parent) if valid_object(parent) && !tables.iter().any(|t| t == parent) => {
                tables.push(parent.to_string())
            }
            _ => break,
        }
    }
    Ok(tables)
}

/// A describe's createable fields.
fn salesforce_fields(describe: &Value) -> Vec<VendorField> {
    let fields = describe["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    fields
        .iter()
        .filter(|f| f["createable"] == true)
        .filter_map(|f| {
            let vendor_type = f["type"].as_str()?.to_string();
            let parameter_type = match vendor_type.as_str() {
                "email" => ParameterType::Email,
                "int" => ParameterType::Integer,
                "double" | "currency" | "percent" => ParameterType::Number,
                "boolean" => ParameterType::Boolean,
                "date" => ParameterType::Date,
                "datetime" => ParameterType::DateTime,
                "multipicklist" => ParameterType::StringList,
                _ => ParameterType::String,
            };
            let length = f["length"].as_u64().filter(|l| *l > 0);
            // An `int` of n digits holds ±(10^n - 1).
            let digits = f["digits"].as_u64().filter(|d| (1..=18).contains(d));
            let range = digits.filter(|_| vendor_type == "int").map(|d| {
                let most = 10i64.pow(d as u32) - 1;
                (-most, most)
            });
            Some(VendorField {
                name: f["name"].as_str()?.to_string(),
                label: f["label"].as_str().unwrap_or_default().to_string(),
                required: f["nillable"] == false && f["defaultedOnCreate"] == false,
                max_length: length.and_then(|l| u32::try_from(l).ok()),
                range,
                values: f["picklistValues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["active"] != false)
                    .filter_map(|v| v["value"].as_str().map(str::to_string))
                    .collect(),
                vendor_type,
                parameter_type,
            })
        })
        .collect()
}

/// The dictionary's writable columns of `tables`: a column the nearer table redefines wins.
fn servicenow_fields(dictionary: &Value, tables: &[String]) -> Vec<VendorField> {
    let rows = dictionary["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut fields: Vec<(usize, VendorField)> = Vec::new();
    for row in rows {
        let (Some(table), Some(name)) = (text(&row["name"]), text(&row["element"])) else {
            continue;
        };
        let Some(depth) = tables.iter().position(|t| t == table) else {
            continue;
        };
        if name.starts_with("sys_") || text(&row["read_only"]) == Some("true") {
            continue;
        }
        let vendor_type = text(&row["internal_type"]).unwrap_or("string").to_string();
        let parameter_type = match vendor_type.as_str() {
            "integer" | "longint" => ParameterType::Integer,
            "decimal" | "float" | "currency" => ParameterType::Number,
            "boolean" => ParameterType::Boolean,
            "glide_date" => ParameterType::Date,
            "glide_date_time" | "due_date" => ParameterType::DateTime,
            "email" => ParameterType::Email,
            _ => ParameterType::String,
        };
        let field = VendorField {
            name: name.to_string(),
            label: text(&row["column_label"]).unwrap_or(name).to_string(),
            required: text(&row["mandatory"]) == Some("true"),
            max_length: text(&row["max_length"]).and_then(|l| l.parse().ok()),
            range: (vendor_type == "integer").then_some((i32::MIN.into(), i32::MAX.into())),
            values: Vec::new(),
            vendor_type,
            parameter_type,
        };
        match fields.iter_mut().find(|(_, f)| f.name == field.name) {
            Some(known) if known.0 > depth => *known = (depth, field),
            Some(_) => {}
            None => fields.push((depth, field)),
        }
    }
    let mut fields: Vec<VendorField> = fields.into_iter().map(|(_, f)| f).collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    fields
}

/// Each choice list's values, by sequence, onto its field: the list of the nearest table that
/// defines one (an incident's own `category` choices over task's).
fn add_choices(fields: &mut [VendorField], choices: &Value, tables: &[String]) {
    let rows = choices["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for field in fields.iter_mut() {
        let of_table = |table: &String| {
            let mut values: Vec<(i64, &str)> = rows
                .iter()
                .filter(|r| {
                    text(&r["name"]) == Some(table) && text(&r["element"]) == Some(&field.name)
                })
                .filter_map(|r| {
                    let sequence = text(&r["sequence"])
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    Some((sequence, text(&r["value"])?))
                })
                .collect();
            values.sort();
            // One row per language a list is translated to, all of the same values: each once.
            let mut seen = std::collections::HashSet::new();
            values
                .into_iter()
                .filter(|(_, v)| seen.insert(*v))
                .map(|(_, v)| v.to_string())
                .collect::<Vec<_>>()
        };
        if let Some(values) = tables.iter().map(of_table).find(|v| !v.is_empty()) {
            field.values = values;
        }
    }
}

/// A Table API value: a string, or a reference's `value`.
fn text(v: &Value) -> Option<&str> {
    v.as_str()
        .or_else(|| v["value"].as_str())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
