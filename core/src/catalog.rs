//! The catalogue: business domains, apps and their automation templates, as data
//! (`core/catalog/*.json`), validated when loaded so a broken definition stops start-up with a
//! message naming it. Adding an action to an existing vendor is a JSON edit, not Rust code.

use aic_proto::{HttpMethod, ParameterLocation, ParameterSpec, ParameterType, Transform};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use unicode_normalization::UnicodeNormalization;

/// The app files compiled into the binaries.
const APPS: &[(&str, &str)] = &[
    (
        "salesforce.json",
        include_str!("../catalog/salesforce.json"),
    ),
    ("jira.json", include_str!("../catalog/jira.json")),
    (
        "servicenow.json",
        include_str!("../catalog/servicenow.json"),
    ),
    ("slack.json", include_str!("../catalog/slack.json")),
];
const DOMAINS: &str = include_str!("../catalog/domains.json");

/// A business domain (a department or line of business).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Domain {
    /// Stable id, e.g. `it_service_management`.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A catalogue tile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    /// Stable id, e.g. `salesforce`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Business domains served (ids).
    pub domains: Vec<String>,
    /// Search keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Hosts its instances live on (`*.` matches any subdomain); anything else is refused.
    pub host_patterns: Vec<String>,
    /// What the connection form's domain is, and where to find it.
    pub domain_help: String,
    /// Supported auth types and the secret fields each needs.
    pub auth_types: Vec<AuthTypeSpec>,
    /// Which vendor error convention its responses follow.
    pub error_convention: String,
}

/// One supported way of authenticating.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthTypeSpec {
    /// Stable id, e.g. `oauth2_client_credentials`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Secret fields the connection form requires.
    pub secret_fields: Vec<String>,
    /// Secret fields it accepts but does not require.
    #[serde(default)]
    pub optional_fields: Vec<String>,
    /// How to set it up at the vendor: what to create, which scopes, whose permissions the
    /// calls get (the connection form's side panel).
    pub instructions: String,
    /// What each secret and optional field is, by name: every one of them, and no other.
    pub field_help: BTreeMap<String, String>,
}

/// An automation template ("All automations").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Template {
    /// Stable id within the app, e.g. `create_lead`.
    pub action: String,
    /// Display name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Business domain.
    pub domain: String,
    /// HTTP method.
    pub method: HttpMethod,
    /// Path on the instance, with `{placeholders}` filled by path parameters.
    pub path: String,
    /// Output field → JSON pointer into the vendor's success body.
    pub output: BTreeMap<String, String>,
    /// Default parameter table.
    pub parameters: Vec<ParameterSpec>,
    /// The vendor's dedupe handle for this create, if it has one.
    #[serde(default)]
    pub dedupe: Option<aic_proto::Dedupe>,
    /// Where the vendor's rate limit on this action applies: a JSON pointer into the request
    /// body (Slack: `/channel`, about one message a second per channel). A `Retry-After` then
    /// holds only the connection's calls with the same value there, not every call on the
    /// connection. Without it, a rate limit holds the whole connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_scope: Option<String>,
}

#[derive(Deserialize)]
struct Source {
    app: App,
    templates: Vec<Template>,
}

#[derive(Deserialize)]
struct DomainList {
    domains: Vec<Domain>,
}

/// Everything the catalogue holds.
#[derive(Clone, Debug)]
pub struct Catalog {
    domains: Vec<Domain>,
    apps: Vec<(App, Vec<Template>)>,
}

/// A catalogue file that does not hold up.
#[derive(Debug, thiserror::Error)]
#[error("catalogue file {file}: {problem}")]
pub struct CatalogError {
    file: String,
    problem: String,
}

/// Lower-case and without accents, for matching "Réseau" with "reseau".
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Catalog {
    /// Loads and validates the compiled-in catalogue.
    pub fn load() -> Result<Self, CatalogError> {
        let mut sources = vec![("domains.json", DOMAINS)];
        sources.extend_from_slice(APPS);
        Self::from_sources(&sources)
    }

    /// Loads and validates catalogue files given as `(name, text)`, domains first.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, CatalogError> {
        let err = |file: &str, problem: String| CatalogError {
            file: file.to_string(),
            problem,
        };
        let Some(((dfile, dtext), app_files)) = sources.split_first() else {
            return Err(err("-", "no catalogue files".into()));
        };
        let domains: DomainList =
            serde_json::from_str(dtext).map_err(|e| err(dfile, e.to_string()))?;
        let known: BTreeSet<&str> = domains.domains.iter().map(|d| d.id.as_str()).collect();
        let mut apps = Vec::new();
        let mut ids = HashSet::new();
        for (file, text) in app_files {
            let source: Source =
                serde_json::from_str(text).map_err(|e| err(file, e.to_string()))?;
            validate(&source, &known).map_err(|p| err(file, p))?;
            if !ids.insert(source.app.id.clone()) {
                return Err(err(
                    file,
                    format!("app '{}' is declared twice", source.app.id),
                ));
            }
            apps.push((source.app, source.templates));
        }
        Ok(Self {
            domains: domains.domains,
            apps,
        })
    }

    /// All business domains.
    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    /// All apps.
    pub fn apps(&self) -> impl Iterator<Item = (&App, &[Template])> {
        self.apps.iter().map(|(a, t)| (a, t.as_slice()))
    }

    /// Apps serving `domain` (if given) and matching `query` (if given) in their name,
    /// description, keywords, domain names or template names — case- and accent-insensitively.
    pub fn search(&self, domain: Option<&str>, query: Option<&str>) -> Vec<(&App, &[Template])> {
        let needle = query.map(fold).filter(|q| !q.trim().is_empty());
        self.apps()
            .filter(|(a, _)| domain.is_none_or(|d| a.domains.iter().any(|x| x == d)))
            .filter(|(a, templates)| {
                let Some(needle) = &needle else { return true };
                let domain_names = a
                    .domains
                    .iter()
                    .filter_map(|d| self.domains.iter().find(|x| &x.id == d))
                    .map(|d| d.name.as_str());
                std::iter::once(a.name.as_str())
                    .chain(std::iter::once(a.description.as_str()))
                    .chain(a.keywords.iter().map(String::as_str))
                    .chain(domain_names)
                    .chain(templates.iter().map(|t| t.name.as_str()))
                    .any(|hay| fold(hay).contains(needle.as_str()))
            })
            .collect()
    }

    /// One app.
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|(a, _)| a.id == id).map(|(a, _)| a)
    }

    /// One template of one app.
    pub fn template(&self, app: &str, action: &str) -> Option<&Template> {
        self.apps
            .iter()
            .find(|(a, _)| a.id == app)
            .and_then(|(_, ts)| ts.iter().find(|t| t.action == action))
    }
}

fn placeholders(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

fn validate(source: &Source, domains: &BTreeSet<&str>) -> Result<(), String> {
    let app = &source.app;
    validate_app(app, domains)?;
    let mut actions = HashSet::new();
    for t in &source.templates {
        let at = |p: String| format!("template '{}.{}': {p}", app.id, t.action);
        if !actions.insert(&t.action) {
            return Err(at("declared twice".into()));
        }
        validate_template(t, domains).map_err(at)?;
    }
    Ok(())
}

fn validate_app(app: &App, domains: &BTreeSet<&str>) -> Result<(), String> {
    if app.auth_types.is_empty() {
        return Err(format!("app '{}' declares no auth type", app.id));
    }
    if app.host_patterns.is_empty() {
        return Err(format!("app '{}' declares no host pattern", app.id));
    }
    if crate::vendor::Vendor::for_app(&app.error_convention).is_none() {
        return Err(format!(
            "app '{}': unknown error convention '{}'",
            app.id, app.error_convention
        ));
    }
    if let Some(d) = app.domains.iter().find(|d| !domains.contains(d.as_str())) {
        return Err(format!("app '{}': unknown business domain '{d}'", app.id));
    }
    if app.domain_help.trim().is_empty() {
        return Err(format!("app '{}' has no domain_help", app.id));
    }
    app.auth_types
        .iter()
        .try_for_each(validate_help)
        .map_err(|e| format!("app '{}': {e}", app.id))
}

/// An auth type's set-up instructions, and one help text for each of its fields, no other.
fn validate_help(t: &AuthTypeSpec) -> Result<(), String> {
    if t.instructions.trim().is_empty() {
        return Err(format!("auth type '{}' has no instructions", t.id));
    }
    let fields: BTreeSet<&str> = t
        .secret_fields
        .iter()
        .chain(&t.optional_fields)
        .map(String::as_str)
        .collect();
    let helped: BTreeSet<&str> = t
        .field_help
        .iter()
        .filter(|(_, help)| !help.trim().is_empty())
        .map(|(field, _)| field.as_str())
        .collect();
    if fields != helped {
        return Err(format!(
            "auth type '{}': field_help must describe exactly its fields {fields:?}, not {helped:?}",
            t.id
        ));
    }
    Ok(())
}

/// What is wrong with `t`, if anything, without naming it.
fn validate_template(t: &Template, domains: &BTreeSet<&str>) -> Result<(), String> {
    if !domains.contains(t.domain.as_str()) {
        return Err(format!("unknown business domain '{}'", t.domain));
    }
    if !t.path.starts_with('/') {
        return Err(format!("path '{}' must start with '/'", t.path));
    }
    let path_params = path_parameters(t)?;
    if placeholders(&t.path) != path_params {
        return Err(format!(
            "path placeholders {:?} and path parameters {path_params:?} differ",
            placeholders(&t.path)
        ));
    }
    if let Some(scope) = &t.rate_limit_scope {
        let names_a_required_field = t.parameters.iter().any(|p| {
            p.required
                && p.location == ParameterLocation::Body
                && format!("/{}", p.target.replace('.', "/")) == *scope
        });
        if !names_a_required_field {
            return Err(format!(
                "rate_limit_scope '{scope}' must point at a required body parameter's target (JSON pointer, e.g. '/channel')"
            ));
        }
    }
    if let Some(pointer) = t.output.values().find(|p| !p.starts_with('/')) {
        return Err(format!("output pointer '{pointer}' must start with '/'"));
    }
    Ok(())
}

/// Checks each of `t`'s parameters, and returns the targets of those that fill the path.
fn path_parameters(t: &Template) -> Result<BTreeSet<String>, String> {
    let mut names = HashSet::new();
    let mut targets = HashSet::new();
    let mut path_params = BTreeSet::new();
    for p in &t.parameters {
        if !names.insert(&p.name) {
            return Err(format!("parameter '{}' declared twice", p.name));
        }
        if !targets.insert((&p.target, p.location)) {
            return Err(format!("target field '{}' mapped twice", p.target));
        }
        if p.location == ParameterLocation::Path {
            path_params.insert(p.target.clone());
            if !p.required {
                return Err(format!("path parameter '{}' must be required", p.name));
            }
        }
        if p.transform == Some(Transform::Adf) && p.kind != ParameterType::String {
            return Err(format!(
                "parameter '{}': the adf transform needs a string",
                p.name
            ));
        }
        if p.target == "*" && p.kind != ParameterType::Json {
            return Err(format!(
                "parameter '{}': only a json parameter can fill the body root",
                p.name
            ));
        }
    }
    Ok(path_params)
}

#[cfg(test)]
mod tests;
