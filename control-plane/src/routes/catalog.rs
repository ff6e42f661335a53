//! The catalogue: apps ("All integrations") and their automation templates.

use crate::auth::{ANY, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use aic_proto::ParameterSpec;
use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A catalogue tile.
#[derive(Serialize, JsonSchema)]
pub struct AppView {
    /// Stable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Short description.
    pub description: String,
    /// Business domains.
    pub domains: Vec<String>,
    /// What the connection form's domain is, and where to find it.
    pub domain_help: String,
    /// Supported auth types with their secret fields and how to set each up.
    pub auth_types: Vec<AuthTypeView>,
    /// Number of automation templates.
    pub automations: usize,
}

/// An auth type and the secret fields its connection form asks for.
#[derive(Serialize, JsonSchema)]
pub struct AuthTypeView {
    /// Id to use as `auth_type`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Secret fields, all required.
    pub secret_fields: Vec<String>,
    /// Secret fields accepted but not required.
    pub optional_fields: Vec<String>,
    /// How to set it up at the vendor (the connection form's side panel).
    pub instructions: String,
    /// Every field of the form, required ones first, with what it is.
    pub fields: Vec<FieldView>,
}

/// A field of the connection form.
#[derive(Serialize, JsonSchema)]
pub struct FieldView {
    /// Its name in `secrets`.
    pub name: String,
    /// Whether the form needs it.
    pub required: bool,
    /// What it is and where to find it.
    pub description: String,
}

fn auth_type_view(t: &aic_core::catalog::AuthTypeSpec) -> AuthTypeView {
    let field = |name: &String, required| FieldView {
        name: name.clone(),
        required,
        description: t.field_help.get(name).cloned().unwrap_or_default(),
    };
    AuthTypeView {
        id: t.id.clone(),
        name: t.name.clone(),
        secret_fields: t.secret_fields.clone(),
        optional_fields: t.optional_fields.clone(),
        instructions: t.instructions.clone(),
        fields: (t.secret_fields.iter().map(|f| field(f, true)))
            .chain(t.optional_fields.iter().map(|f| field(f, false)))
            .collect(),
    }
}

/// A business domain.
#[derive(Serialize, JsonSchema)]
pub struct DomainView {
    /// Id, for `?domain=`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Apps serving it.
    pub apps: usize,
}

/// Filters of `GET /v1/apps` and `GET /v1/templates`; an unknown one is refused, not ignored.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// Only items of this business domain (id).
    pub domain: Option<String>,
    /// Search text: name, description, keywords, domain names; case- and accent-insensitive.
    pub q: Option<String>,
    /// Only templates of this app (`GET /v1/templates`).
    pub app: Option<String>,
}

/// An automation template.
#[derive(Serialize, JsonSchema)]
pub struct TemplateView {
    /// `app.action`, the id to create an automation from.
    pub id: String,
    /// The app.
    pub app: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Business domain.
    pub domain: String,
    /// Default parameter table.
    pub parameters: Vec<ParameterSpec>,
}

/// `GET /v1/domains`.
pub async fn list_domains(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<DomainView>>, ApiError> {
    caller.require(ANY)?;
    Ok(Json(
        state
            .catalog
            .domains()
            .iter()
            .map(|d| DomainView {
                id: d.id.clone(),
                name: d.name.clone(),
                apps: state.catalog.search(Some(&d.id), None).len(),
            })
            .collect(),
    ))
}

fn check_domain(state: &AppState, q: &CatalogQuery) -> Result<(), ApiError> {
    known_filters(state, q.app.as_deref(), q.domain.as_deref())
}

/// Refuses a filter naming an app or a business domain the catalogue does not have.
pub fn known_filters(
    state: &AppState,
    app: Option<&str>,
    domain: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(a) = app.filter(|a| state.catalog.app(a).is_none()) {
        return Err(ApiError::invalid(
            "app",
            format!("unknown app '{a}' (see GET /v1/apps)"),
        ));
    }
    match domain {
        Some(d) if !state.catalog.domains().iter().any(|x| x.id == d) => Err(ApiError::invalid(
            "domain",
            format!("unknown business domain '{d}' (see GET /v1/domains)"),
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/apps?domain=&q=`.
pub async fn list_apps(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CatalogQuery>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    caller.require(ANY)?;
    check_domain(&state, &q)?;
    Ok(Json(
        state
            .catalog
            .search(q.domain.as_deref(), q.q.as_deref())
            .into_iter()
            .map(|(a, templates)| AppView {
                id: a.id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                domains: a.domains.clone(),
                domain_help: a.domain_help.clone(),
                auth_types: a.auth_types.iter().map(auth_type_view).collect(),
                automations: templates.len(),
            })
            .collect(),
    ))
}

/// `GET /v1/apps/{app}/templates`.
pub async fn list_templates(
    caller: Caller,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    caller.require(ANY)?;
    let (_, templates) = state
        .catalog
        .apps()
        .find(|(a, _)| a.id == app)
        .ok_or_else(|| ApiError::not_found("app"))?;
    Ok(Json(
        templates
            .iter()
            .map(|t| TemplateView {
                id: format!("{app}.{}", t.action),
                app: app.clone(),
                name: t.name.clone(),
                description: t.description.clone(),
                domain: t.domain.clone(),
                parameters: t.parameters.clone(),
            })
            .collect(),
    ))
}

/// `GET /v1/templates?app=&domain=&q=` ("All automations", filtered).
pub async fn search_templates(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CatalogQuery>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    caller.require(ANY)?;
    check_domain(&state, &q)?;
    let needle = q.q.as_deref().map(aic_core::catalog::fold);
    let mut out = Vec::new();
    for (app, templates) in state.catalog.apps() {
        if q.app.as_ref().is_some_and(|a| a != &app.id) {
            continue;
        }
        for t in templates {
            let in_domain = q.domain.as_ref().is_none_or(|d| &t.domain == d);
            let matches = needle.as_ref().is_none_or(|n| {
                [t.name.as_str(), t.description.as_str(), app.name.as_str()]
                    .iter()
                    .any(|h| aic_core::catalog::fold(h).contains(n.as_str()))
            });
            if in_domain && matches {
                out.push(TemplateView {
                    id: format!("{}.{}", app.id, t.action),
                    app: app.id.clone(),
                    name: t.name.clone(),
                    description: t.description.clone(),
                    domain: t.domain.clone(),
                    parameters: t.parameters.clone(),
                });
            }
        }
    }
    Ok(Json(out))
}
