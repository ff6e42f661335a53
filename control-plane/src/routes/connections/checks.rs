//! The checks of a connection's input: its app and auth type, its secret fields and its
//! domain.

use super::ConnectionInput;
use crate::error::ApiError;
use crate::state::AppState;
use aic_core::catalog::{App, AuthTypeSpec};
use aic_core::credentials::SecretFields;
use aic_core::vendor::Vendor;
use aic_proto::{ConnectionId, TenantId};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use url::Url;

/// A connection's input, checked: its connector, its instance's URL and its secrets.
pub(crate) struct Validated {
    pub vendor: Vendor,
    pub instance: Url,
    pub secrets: SecretFields,
}

/// Checks a connection's input against the catalogue and the egress policy (the domain's
/// resolution apart: [`check_dns`]).
pub(super) fn validate(state: &AppState, input: &ConnectionInput) -> Result<Validated, ApiError> {
    validate_given(state, input, &|_| true)
}

/// [`validate`] for an edit: every required field present and none unknown, in the secrets as
/// merged, but only those given (`given` names them) read for their form — a connection saved
/// before a check existed (one that works) is renamed or capped without its saved secrets,
/// which cannot be read back, being refused.
pub(super) fn validate_given(
    state: &AppState,
    input: &ConnectionInput,
    given: &dyn Fn(&str) -> bool,
) -> Result<Validated, ApiError> {
    crate::routes::checked_name(&input.name)?;
    if let Some(n) = input.max_concurrency.filter(|n| !(1..=10_000).contains(n)) {
        return Err(ApiError::invalid(
            "max_concurrency",
            format!("max_concurrency must be between 1 and 10000, not {n}"),
        ));
    }
    let app = state
        .catalog
        .app(&input.app)
        .ok_or_else(|| ApiError::invalid("app", format!("unknown app '{}'", input.app)))?;
    let vendor = Vendor::for_app(&app.id).ok_or_else(|| {
        ApiError::invalid("app", format!("app '{}' has no connector yet", app.id))
    })?;
    let auth = auth_spec(app, &input.auth_type)?;
    let secrets = SecretFields::new(input.secrets.clone());
    check_secrets(auth, &secrets, given)?;
    let instance = state
        .egress
        .app_instance_url(&input.domain, &app.host_patterns)
        .map_err(|e| ApiError::invalid("domain", e.to_string()))?;
    Ok(Validated {
        vendor,
        instance,
        secrets,
    })
}

/// The app's auth type `auth_type`.
fn auth_spec<'a>(app: &'a App, auth_type: &str) -> Result<&'a AuthTypeSpec, ApiError> {
    app.auth_types
        .iter()
        .find(|a| a.id == auth_type)
        .ok_or_else(|| {
            let known: Vec<_> = app.auth_types.iter().map(|a| a.id.as_str()).collect();
            ApiError::invalid(
                "auth_type",
                format!(
                    "auth type '{}' is not supported by {} (supported: {})",
                    auth_type,
                    app.name,
                    known.join(", ")
                ),
            )
        })
}

/// Fields whose value may begin or end with white space: a password may, and a PEM key
/// ends with a line break.
const SPACED_FIELDS: [&str; 2] = ["password", "private_key"];

/// The longest secret field's value: a PEM key of 4,096 bits is about 3,300 characters, the
/// longest vendor tokens a few thousand; a file pasted by mistake is refused, not sent to the
/// vendor with every token request.
const SECRET_MAX: usize = 16_384;

/// No secret field given is longer than [`SECRET_MAX`], and none (but a password or a key) has
/// white space around it: an id, token or user name copied with a line break or a space was
/// saved as it came, and the vendor refused it as if the credentials were wrong. Only the
/// fields given are checked: an edit leaves the saved ones as they were. The value is never
/// repeated.
pub(super) fn check_given(given: &BTreeMap<String, SecretString>) -> Result<(), ApiError> {
    let long = given
        .iter()
        .map(|(name, value)| (name, value.expose_secret().chars().count()))
        .find(|(_, count)| *count > SECRET_MAX);
    if let Some((name, count)) = long {
        return Err(ApiError::invalid(
            format!("secrets.{name}"),
            format!(
                "secret field '{name}' is {count} characters long; at most {SECRET_MAX} are accepted"
            ),
        ));
    }
    let spaced = given.iter().find(|(name, value)| {
        let value = value.expose_secret();
        !SPACED_FIELDS.contains(&name.as_str()) && value.trim() != value
    });
    match spaced {
        Some((name, _)) => Err(ApiError::invalid(
            format!("secrets.{name}"),
            format!(
                "secret field '{name}' begins or ends with white space (a line break or a space copied with it?)"
            ),
        )),
        None => Ok(()),
    }
}

/// Every secret field the auth type requires is there, no other, and those `given` read as what
/// they are: an e-mail address, a bot token, a user name, a cloud id, a private key.
fn check_secrets(
    auth: &AuthTypeSpec,
    secrets: &SecretFields,
    given: &dyn Fn(&str) -> bool,
) -> Result<(), ApiError> {
    let fresh = |name: &str| secrets.get(name).filter(|_| given(name));
    for field in &auth.secret_fields {
        if secrets.get(field).is_none() {
            return Err(ApiError::invalid(
                format!("secrets.{field}"),
                format!(
                    "secret field '{field}' is required for auth type '{}'",
                    auth.id
                ),
            ));
        }
    }
    if let Some(extra) = secrets.names().find(|n| {
        !auth
            .secret_fields
            .iter()
            .chain(&auth.optional_fields)
            .any(|f| f == n)
    }) {
        return Err(ApiError::invalid(
            format!("secrets.{extra}"),
            format!(
                "secret field '{extra}' is not used by auth type '{}'",
                auth.id
            ),
        ));
    }
    // An account's address (Jira's Basic auth): a user name or a site pasted there is refused
    // here rather than by the vendor as wrong credentials. (White space around it is
    // `check_given`'s to name.)
    if let Some(email) = fresh("email")
        && !aic_core::params::is_email(email.expose_secret().trim())
    {
        return Err(ApiError::invalid(
            "secrets.email",
            "secret field 'email' must be the account's e-mail address (name@example.com)",
        ));
    }
    if let Some(token) = fresh("bot_token") {
        check_bot_token(token.expose_secret())?;
    }
    // RFC 7617: a Basic user-id holding ':' cannot be told from its password; ServiceNow's and
    // Salesforce's user names never hold one.
    if let Some(user) = fresh("username")
        && user.expose_secret().contains(':')
    {
        return Err(ApiError::invalid(
            "secrets.username",
            "secret field 'username' must not hold ':' (no such user name exists, and Basic \
             authentication would read what follows it as the password)",
        ));
    }
    if let Some(cloud) = fresh("cloud_id") {
        aic_core::vendor::jira::check_cloud_id(cloud.expose_secret()).map_err(|why| {
            ApiError::invalid("secrets.cloud_id", format!("secret field 'cloud_id' {why}"))
        })?;
    }
    if let Some(pem) = fresh("private_key") {
        aic_core::vendor::salesforce::check_private_key(pem.expose_secret()).map_err(|e| {
            ApiError::invalid(
                "secrets.private_key",
                format!("secret field 'private_key' is {e}"),
            )
        })?;
    }
    Ok(())
}

/// A Slack bot token (`xoxb-`, or `xoxe.xoxb-` when the app rotates its tokens): a user token
/// would post as the person who made it, an app-level one cannot post at all. Only the
/// prefix, which says the kind and nothing secret, is repeated.
fn check_bot_token(token: &str) -> Result<(), ApiError> {
    let why = if token.starts_with("xoxb-") || token.starts_with("xoxe.xoxb-") {
        return Ok(());
    } else if token.starts_with("xoxp-") {
        "is a user token (xoxp-): its messages would be posted as that person"
    } else if token.starts_with("xapp-") {
        "is an app-level token (xapp-), which cannot post messages"
    } else {
        "is not a bot token"
    };
    Err(ApiError::invalid(
        "secrets.bot_token",
        format!(
            "secret field 'bot_token' {why}: give the app's Bot User OAuth Token, beginning \
             'xoxb-' (OAuth & Permissions)"
        ),
    ))
}

/// Resolves the domain now: a host that resolves to a private address is refused at set-up.
pub(super) async fn check_dns(state: &AppState, instance: &Url) -> Result<(), ApiError> {
    state
        .egress
        .check_resolution(instance)
        .await
        .map_err(|e| ApiError::invalid("domain", e.to_string()))
}

/// A domain's resolution made before the connection's row is locked, and its outcome.
pub(super) struct Resolved {
    pub instance: Url,
    pub outcome: Result<(), ApiError>,
}

/// Resolves the domain an edit re-authorises connection `id` on — `domain`, or the saved one
/// when it brings `new_secrets` — before its row is locked: a slow resolver (its timeout times
/// its attempts) would otherwise hold every write on the connection — the workers' status
/// writes and lease renewals, another admin's edit — for as long. Nor does it hold a database
/// connection meanwhile: a few edits waiting on a slow resolver would otherwise hold the whole
/// pool, and every call on the API would wait for them. `None` when the edit does not
/// re-authorise as the row reads now, or its domain does not pass the other checks (the edit
/// reports those in its order, under the lock).
pub(super) async fn resolved_early(
    state: &AppState,
    (tenant, id): (TenantId, ConnectionId),
    domain: Option<&str>,
    new_secrets: bool,
) -> Result<Option<Resolved>, ApiError> {
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT app, domain FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&tenant.0, &id.0],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (app, saved): (String, String) = (row.get(0), row.get(1));
    let domain = domain.unwrap_or(&saved);
    if !new_secrets && domain == saved {
        return Ok(None);
    }
    let patterns = match state.catalog.app(&app) {
        Some(app) => &app.host_patterns,
        None => return Ok(None),
    };
    let Ok(instance) = state.egress.app_instance_url(domain, patterns) else {
        return Ok(None);
    };
    let outcome = check_dns(state, &instance).await;
    Ok(Some(Resolved { instance, outcome }))
}
