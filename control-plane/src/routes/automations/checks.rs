//! The checks of an automation's draft: its template, its parameters, its external id field
//! and its connection.

use crate::error::ApiError;
use aic_core::catalog::{Catalog, Template};
use aic_proto::{ConnectionId, ParameterSpec, TenantId};
use std::collections::HashSet;

/// Checks an automation's parameters: each one on its own, then against the template's path
/// and the fields the vendor requires.
pub(super) fn check_parameters(
    template: &Template,
    params: &[ParameterSpec],
) -> Result<(), ApiError> {
    check_each(params)?;
    check_against(template, params)
}

/// The most rows a parameter table holds (a Salesforce object has up to 800 custom fields; a
/// create sets a few dozen at most).
const PARAMETERS_MAX: usize = 500;

/// Each parameter's name, target and description, that none is declared or mapped twice, and
/// that the table is not past [`PARAMETERS_MAX`].
fn check_each(params: &[ParameterSpec]) -> Result<(), ApiError> {
    if params.len() > PARAMETERS_MAX {
        return Err(ApiError::invalid(
            "parameters",
            format!(
                "the table has {} parameters; at most {PARAMETERS_MAX} are accepted",
                params.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    let mut targets = HashSet::new();
    for (i, p) in params.iter().enumerate() {
        let field = |f: &str| format!("parameters[{i}].{f}");
        if p.name.trim().is_empty() || p.name.len() > 100 {
            return Err(ApiError::invalid(
                field("name"),
                "parameter name must be 1 to 100 characters",
            ));
        }
        if !names.insert(p.name.as_str()) {
            return Err(ApiError::invalid(
                field("name"),
                format!("parameter '{}' is declared twice", p.name),
            ));
        }
        let valid_target = p.target == "*" && p.kind == aic_proto::ParameterType::Json
            || !p.target.is_empty()
                && p.target.split('.').all(|s| {
                    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
        if !valid_target {
            return Err(ApiError::invalid(
                field("target"),
                format!("target field '{}' is not a valid field name", p.target),
            ));
        }
        if !targets.insert((p.target.as_str(), p.location)) {
            return Err(ApiError::invalid(
                field("target"),
                format!("target field '{}' is mapped twice", p.target),
            ));
        }
        check_limits(p).map_err(|(f, message)| ApiError::invalid(field(&f), message))?;
        let most = crate::routes::PARAMETER_DESCRIPTION_MAX;
        crate::routes::bounded_description(&field("description"), &p.description, most)?;
    }
    Ok(())
}

/// Most allowed values a parameter lists (a Salesforce pick-list holds 1,000 at most), and the
/// longest one (its values are 255 characters at most).
const ALLOWED_VALUES_MAX: usize = 1_000;
const ALLOWED_VALUE_LENGTH_MAX: usize = 255;

/// That a parameter's bounds apply to its type and leave some value, and that its allowed
/// values are text it can carry: the field at fault (`minimum`, `allowed_values[2]`) and why.
/// (The type's name as the API spells it says what the limit does not apply to.)
fn check_limits(p: &ParameterSpec) -> Result<(), (String, String)> {
    use aic_proto::ParameterType as T;
    let kind = serde_json::to_value(p.kind).unwrap_or_default();
    let kind = kind.as_str().unwrap_or("this");
    for (name, bound) in [("minimum", &p.minimum), ("maximum", &p.maximum)] {
        let Some(bound) = bound else { continue };
        let refused = match p.kind {
            T::Integer if aic_proto::whole::number(bound).is_none() => {
                format!("{name} of an integer parameter must be a whole number, not {bound}")
            }
            T::Integer | T::Number => continue,
            _ => format!("{name} applies to integer and number parameters, not to a {kind} one"),
        };
        return Err((name.into(), refused));
    }
    if let (Some(min), Some(max)) = (&p.minimum, &p.maximum)
        && aic_proto::whole::cmp(min, max).is_gt()
    {
        let refused = format!("maximum ({max}) must not be below minimum ({min})");
        return Err(("maximum".into(), refused));
    }
    check_allowed_values(p, kind)
}

/// That a parameter's allowed values are text it can carry, each once.
fn check_allowed_values(p: &ParameterSpec, kind: &str) -> Result<(), (String, String)> {
    use aic_proto::ParameterType as T;
    if p.allowed_values.is_empty() {
        return Ok(());
    }
    if !matches!(p.kind, T::String | T::StringList) {
        let refused = format!(
            "allowed_values applies to string and string_list parameters, not to a {kind} one"
        );
        return Err(("allowed_values".into(), refused));
    }
    if p.allowed_values.len() > ALLOWED_VALUES_MAX {
        let refused = format!(
            "allowed_values lists {} values; at most {ALLOWED_VALUES_MAX} are accepted",
            p.allowed_values.len()
        );
        return Err(("allowed_values".into(), refused));
    }
    let longest = p.max_length.map_or(ALLOWED_VALUE_LENGTH_MAX, |m| {
        (m as usize).min(ALLOWED_VALUE_LENGTH_MAX)
    });
    let mut seen = HashSet::new();
    for (j, v) in p.allowed_values.iter().enumerate() {
        let refused = if v.is_empty() {
            "an allowed value must not be empty".to_string()
        } else if v.chars().count() > longest {
            format!("an allowed value is at most {longest} characters long")
        } else if !seen.insert(v.as_str()) {
            format!("'{v}' is listed twice")
        } else {
            continue;
        };
        return Err((format!("allowed_values[{j}]"), refused));
    }
    Ok(())
}

/// That each path parameter fills a placeholder of the template's path, and that every field
/// the vendor requires keeps a required parameter.
fn check_against(template: &Template, params: &[ParameterSpec]) -> Result<(), ApiError> {
    let path_params: Vec<_> = params
        .iter()
        .filter(|p| p.location == aic_proto::ParameterLocation::Path)
        .collect();
    if let Some(p) = path_params
        .iter()
        .find(|p| !template.path.contains(&format!("{{{}}}", p.target)))
    {
        return Err(ApiError::invalid(
            "parameters",
            format!(
                "path parameter '{}' fills no placeholder of {}",
                p.name, template.path
            ),
        ));
    }
    for req in template.parameters.iter().filter(|p| p.required) {
        let kept = params
            .iter()
            .any(|p| p.target == req.target && p.location == req.location && p.required);
        if !kept {
            return Err(ApiError::invalid(
                "parameters",
                format!(
                    "'{}' is required by the vendor: keep a required parameter mapped to it",
                    req.target
                ),
            ));
        }
    }
    Ok(())
}

/// An external id field applies to Salesforce creates (`POST …/sobjects/{SObject}/`) and must be
/// a custom field's API name.
pub(super) fn check_external_id_field(
    app: &str,
    template: &Template,
    field: &str,
) -> Result<(), ApiError> {
    let is_create = template.method == aic_proto::HttpMethod::Post
        && template.path.contains("/sobjects/")
        && template.path.ends_with('/');
    if app != "salesforce" || !is_create {
        return Err(ApiError::invalid(
            "external_id_field",
            format!(
                "an external id field applies to Salesforce create templates, not '{app}.{}'",
                template.action
            ),
        ));
    }
    let name = field.strip_suffix("__c").unwrap_or("");
    let valid = name.len() <= 37
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if !valid {
        return Err(ApiError::invalid(
            "external_id_field",
            format!("'{field}' is not a custom field API name (e.g. AIC_Execution_Id__c)"),
        ));
    }
    Ok(())
}

/// The catalogue's template named `app.action`, split into its app and action.
pub(super) fn template_named<'c>(
    catalog: &'c Catalog,
    name: &'c str,
) -> Result<(&'c str, &'c str, &'c Template), ApiError> {
    let (app, action) = name.split_once('.').ok_or_else(|| {
        ApiError::invalid(
            "template",
            "template must be 'app.action', e.g. salesforce.create_lead",
        )
    })?;
    let template = catalog
        .template(app, action)
        .ok_or_else(|| ApiError::invalid("template", format!("unknown template '{name}'")))?;
    Ok((app, action, template))
}

/// Refuses a connection that is not the tenant's, or is to another app than `app`. The row is
/// share-locked until the caller's transaction ends, as the reference it then writes would
/// lock it: a deletion of the connection under way (which locks it to update) is waited for
/// and found here — refused as "no such connection" — and one that comes after it waits for
/// this transaction, then finds the automation using the connection and refuses itself. The
/// connection cannot go between this check and the write, which would fail on the reference.
pub(super) async fn check_connection_app(
    client: &impl deadpool_postgres::GenericClient,
    tenant: TenantId,
    connection: ConnectionId,
    app: &str,
) -> Result<(), ApiError> {
    let conn_app: String = client
        .query_opt(
            "SELECT app FROM connections WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE",
            &[&tenant.0, &connection.0],
        )
        .await?
        .ok_or_else(|| ApiError::invalid("connection_id", "no such connection in this tenant"))?
        .get(0);
    if conn_app != app {
        return Err(ApiError::invalid(
            "connection_id",
            format!("the connection is for '{conn_app}', the template for '{app}'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_templates_own_table_passes_the_checks_a_draft_gets() {
        // An automation created without a table takes its template's: one the checks refused
        // would make every automation of the template impossible to create.
        let catalog = Catalog::load().expect("the catalogue loads");
        let mut checked = 0;
        for (app, templates) in catalog.apps() {
            for t in templates {
                check_parameters(t, &t.parameters)
                    .unwrap_or_else(|e| panic!("{}.{}: {e:?}", app.id, t.action));
                checked += 1;
            }
        }
        assert!(checked >= 9, "{checked} templates");
    }
}
