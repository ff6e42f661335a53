//! `GET /v1/automations/{id}/fields`: the fields the automation's object can be given on
//! create — what the parameter table's `target` column picks from — read from the vendor
//! through the draft's connection (Salesforce's describe, ServiceNow's dictionary: custom
//! fields, labels, lengths, pick-list values and what this org requires; a Jira project's issue
//! type's create screen when the query names them), or from the catalogue's template where
//! the vendor has no such description (Slack; Jira without a project and issue type). Each field
//! names the draft's parameter mapped to it, and the answer lists the required fields that
//! none is, which a publish would leave the vendor to refuse.

use super::definition_of;
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::connections::{Opened, after_refusal, clear_to_call, credential, saved};
use crate::routes::parse_id;
use crate::state::AppState;
use aic_core::vendor::Vendor;
use aic_core::vendor::fields::{self, DescribeError, Named, Object, VendorField};
use aic_proto::{AutomationId, ParameterLocation, ParameterSpec, ParameterType};
use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Query of `GET /v1/automations/{id}/fields`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldsQuery {
    /// Another object than the template's (Salesforce sObject or ServiceNow table API name),
    /// for templates whose object is a parameter (`servicenow.create_record`).
    pub object: Option<String>,
    /// Jira: the project (key or id) whose create screen to read, with `issue_type`.
    pub project: Option<String>,
    /// Jira: the issue type (name or id), with `project`.
    pub issue_type: Option<String>,
}

/// The fields an automation's object can be given.
#[derive(Serialize, JsonSchema)]
pub struct FieldList {
    /// `vendor` (read through the connection now) or `catalogue` (the template's).
    pub source: String,
    /// The object described, e.g. `Lead` or `incident`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// By name.
    pub fields: Vec<FieldView>,
    /// Fields the vendor requires that no parameter of the draft maps.
    pub unmapped_required: Vec<String>,
}

/// One field.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ObjectField")]
pub struct FieldView {
    /// Its API name: a parameter's `target`.
    pub target: String,
    /// Its label.
    pub label: String,
    /// The parameter type that carries it.
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// The vendor's own type (`picklist`, `reference`, `glide_date`…), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_type: Option<String>,
    /// Whether a create without it is refused.
    pub required: bool,
    /// Its maximum length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Its smallest value, for a number the vendor bounds (a parameter's `minimum`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<serde_json::Number>,
    /// Its largest value (a parameter's `maximum`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<serde_json::Number>,
    /// Its allowed values (pick-lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// The draft's parameter mapped to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// `GET /v1/automations/{id}/fields?object=`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FieldsQuery>,
) -> Result<Json<FieldList>, ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let client = state.pool.get().await?;
    let row = super::draft_row(&client, caller.tenant, id, false).await?;
    let (definition, template) = definition_of(&state.catalog, &row)?;
    let vendor = Vendor::for_app(&definition.app)
        .ok_or_else(|| ApiError::internal("connector", &definition.app))?;
    let params = &definition.parameters;
    let Some(object) = asked(vendor, &q, &template.path)? else {
        let fields = template
            .parameters
            .iter()
            .map(|p| catalogued(p, params))
            .collect();
        return Ok(Json(answer("catalogue", None, fields)));
    };
    let connection = definition.connection_id;
    let Opened {
        checked: opened,
        auth_type,
        domain,
        ..
    } = saved(&state, &client, caller.tenant, connection).await?;
    let slot = clear_to_call(&state, client, connection, None).await?;
    let described = async {
        let saved = Some((caller.tenant, connection));
        let token = credential(&state, &opened, &auth_type, saved).await?;
        fields::describe(&state.http, &state.egress, vendor, &token, object).await
    }
    .await;
    drop(slot);
    if let Err(e) = &described {
        after_refusal(&state, (connection, &domain), None, e.failure()).await;
    }
    let described = described.map_err(|e| refused(&e))?;
    let fields = described
        .unwrap_or_default()
        .into_iter()
        .map(|f| described_field(f, params))
        .collect();
    let described = match object {
        Object::Named(name) => name.to_string(),
        Object::JiraIssue {
            project,
            issue_type,
        } => format!("{project}/{issue_type}"),
    };
    Ok(Json(answer("vendor", Some(described), fields)))
}

/// A vendor's refusal of what the query named — no such object (Salesforce's, ServiceNow's),
/// project (Jira's) or issue type in the project — is the caller's to mend: a 422 naming the
/// parameter, with the vendor's words. Any other refusal is a 502, as an execution's.
fn refused(e: &DescribeError) -> ApiError {
    match e {
        DescribeError::Missing(named, f) => {
            let field = match named {
                Named::Object => "object",
                Named::Project => "project",
                Named::IssueType => "issue_type",
            };
            ApiError::vendor_not_found(field, f)
        }
        DescribeError::Failed(f) => ApiError::vendor(f),
    }
}

/// What the query asks to describe: the template's object unless another is named (`object`
/// for Salesforce and ServiceNow, `project` and `issue_type` for Jira); `None` answers from the
/// catalogue. Each parameter the vendor cannot take is refused by name.
fn asked<'q>(
    vendor: Vendor,
    q: &'q FieldsQuery,
    path: &'q str,
) -> Result<Option<Object<'q>>, ApiError> {
    let jira_only =
        |field: &str| ApiError::invalid(field, format!("{field} names a Jira issue type's fields"));
    match (
        vendor,
        q.object.as_deref(),
        q.project.as_deref(),
        q.issue_type.as_deref(),
    ) {
        (Vendor::Jira, None, Some(project), Some(_))
            if !aic_core::vendor::jira::valid_project(project) =>
        {
            Err(ApiError::invalid(
                "project",
                format!("'{project}' is not a project key or id"),
            ))
        }
        (Vendor::Jira, None, Some(project), Some(issue_type)) => Ok(Some(Object::JiraIssue {
            project,
            issue_type,
        })),
        (Vendor::Jira, None, None, None) => Ok(None),
        (Vendor::Jira, Some(_), _, _) => Err(ApiError::invalid(
            "object",
            "a Jira create screen is a project's issue type: give project and issue_type",
        )),
        (Vendor::Jira, None, None, Some(_)) => Err(ApiError::invalid(
            "project",
            "issue_type needs the project whose create screen to read",
        )),
        (Vendor::Jira, None, Some(_), None) => Err(ApiError::invalid(
            "issue_type",
            "project needs the issue type whose create screen to read",
        )),
        (_, _, Some(_), _) => Err(jira_only("project")),
        (_, _, _, Some(_)) => Err(jira_only("issue_type")),
        (_, Some(o), None, None) if !fields::describes(vendor) => Err(ApiError::invalid(
            "object",
            format!("this app describes no objects: its fields are the template's ({o})"),
        )),
        (_, Some(o), None, None) if !fields::valid_object(o) => Err(ApiError::invalid(
            "object",
            format!("'{o}' is not an object's API name"),
        )),
        (_, Some(o), None, None) => Ok(Some(Object::Named(o))),
        (_, None, None, None) => Ok(fields::object_of(vendor, path).map(Object::Named)),
    }
}

fn answer(source: &str, object: Option<String>, mut fields: Vec<FieldView>) -> FieldList {
    fields.sort_by(|a, b| a.target.cmp(&b.target));
    let unmapped_required = fields
        .iter()
        .filter(|f| f.required && f.parameter.is_none())
        .map(|f| f.target.clone())
        .collect();
    FieldList {
        source: source.to_string(),
        object,
        fields,
        unmapped_required,
    }
}

/// The draft's body parameter mapped to `target`.
fn mapped(params: &[ParameterSpec], target: &str) -> Option<String> {
    params
        .iter()
        .find(|p| p.location == ParameterLocation::Body && p.target == target)
        .map(|p| p.name.clone())
}

fn described_field(f: VendorField, params: &[ParameterSpec]) -> FieldView {
    FieldView {
        parameter: mapped(params, &f.name),
        target: f.name,
        label: f.label,
        kind: f.parameter_type,
        vendor_type: Some(f.vendor_type),
        required: f.required,
        max_length: f.max_length,
        minimum: f.range.map(|r| r.0.into()),
        maximum: f.range.map(|r| r.1.into()),
        values: f.values,
    }
}

fn catalogued(p: &ParameterSpec, params: &[ParameterSpec]) -> FieldView {
    FieldView {
        target: p.target.clone(),
        label: p.description.clone(),
        kind: p.kind,
        vendor_type: None,
        required: p.required,
        max_length: p.max_length,
        minimum: p.minimum.clone(),
        maximum: p.maximum.clone(),
        values: p.allowed_values.clone(),
        parameter: params
            .iter()
            .find(|d| d.location == p.location && d.target == p.target)
            .map(|d| d.name.clone()),
    }
}
