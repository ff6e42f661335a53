//! Bearer-token authentication and roles. Tokens are random, shown once, and stored as SHA-256
//! hashes; each belongs to one tenant and carries one role.

use crate::error::ApiError;
use crate::state::AppState;
use aic_proto::TenantId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Configures everything.
    Admin,
    /// Configures connections and automations.
    Editor,
    /// Reads.
    Viewer,
    /// Only enqueues executions and reads their results (flows, bots).
    Service,
}

impl Role {
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "editor" => Some(Self::Editor),
            "viewer" => Some(Self::Viewer),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// Tenant every query is scoped to.
    pub tenant: TenantId,
    /// The token used (recorded as creator/modifier).
    pub token_id: Uuid,
    /// Its role.
    pub role: Role,
    /// Limited to some automations (a service token issued with `automations`): it reaches
    /// those alone ([`Caller::may_reach`]).
    pub scoped: bool,
}

/// Roles that configure.
pub const CONFIGURE: &[Role] = &[Role::Admin, Role::Editor];
/// Roles that read configuration.
pub const READ: &[Role] = &[Role::Admin, Role::Editor, Role::Viewer];
/// Roles that run automations.
pub const EXECUTE: &[Role] = &[Role::Admin, Role::Editor, Role::Service];
/// Every role.
pub const ANY: &[Role] = &[Role::Admin, Role::Editor, Role::Viewer, Role::Service];

impl Caller {
    /// Refuses unless the caller's token reaches `automation`: every automation of the tenant,
    /// or, for a token limited to some, one of those. Costs a query only for a limited token.
    pub async fn may_reach(
        &self,
        client: &tokio_postgres::Client,
        automation: Uuid,
    ) -> Result<(), ApiError> {
        if !self.scoped {
            return Ok(());
        }
        let found = client
            .query_opt(
                "SELECT 1 FROM api_token_automations WHERE token_id = $1 AND automation_id = $2",
                &[&self.token_id, &automation],
            )
            .await?;
        found.map(|_| ()).ok_or_else(|| {
            ApiError::forbidden(format!(
                "this token is limited to the automations it was issued for, and automation \
                 {automation} is not one of them"
            ))
        })
    }

    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let allowed: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this action needs one of the roles {}; the token's role is {}",
                allowed.join(", "),
                self.role
            )))
        }
    }
}

/// Hash stored for a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token (`aic_` + 256 random bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("aic_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A working token by its hash; its use is recorded at most once a minute, in the same round
/// trip, so that a busy service token costs no write per request.
const LOOKUP: &str = "WITH t AS (SELECT id, tenant_id, role, scoped, last_used_at FROM api_tokens \
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())), \
    used AS (UPDATE api_tokens a SET last_used_at = now() FROM t WHERE a.id = t.id \
    AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')) \
    SELECT id, tenant_id, role, scoped FROM t";

/// The token of a request's one `Authorization: Bearer <token>` header, its scheme in any case
/// (`bearer`: HTTP's schemes are case-insensitive, and some clients write it so); none, two
/// (which would one be?) or another scheme is a 401 saying which.
fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let mut given = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let header = given
        .next()
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <token> header"))?;
    if given.next().is_some() {
        return Err(ApiError::unauthenticated(
            "Authorization given more than once: send one",
        ));
    }
    header
        .to_str()
        .ok()
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("Authorization header must be 'Bearer <token>'"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        let client = state.pool.get().await?;
        let row = client
            .query_opt(LOOKUP, &[&hash_token(token)])
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown, expired or revoked token"))?;
        let role: String = row.get(2);
        Ok(Caller {
            token_id: row.get(0),
            tenant: TenantId(row.get(1)),
            role: Role::parse(&role).ok_or_else(|| ApiError::internal("token role", &role))?,
            scoped: row.get(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_from_one_header() {
        use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
        let headers = |values: &[&'static str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append(AUTHORIZATION, HeaderValue::from_static(v));
            }
            map
        };
        for given in [
            "Bearer aic_x",
            "bearer aic_x",
            "BEARER  aic_x ",
            " Bearer aic_x",
        ] {
            assert_eq!(bearer(&headers(&[given])).ok(), Some("aic_x"), "{given:?}");
        }
        for (given, says) in [
            (&[][..], "missing Authorization"),
            (&["Bearer aic_x", "Bearer aic_y"], "more than once"),
            (&["Basic aic_x"], "must be 'Bearer <token>'"),
            (&["Bearer"], "must be 'Bearer <token>'"),
            (&["Bearer   "], "must be 'Bearer <token>'"),
            (&["Beareraic_x"], "must be 'Bearer <token>'"),
        ] {
            let refused = bearer(&headers(given)).expect_err("refused").detail();
            assert!(
                refused.message.contains(says),
                "{given:?}: {}",
                refused.message
            );
        }
    }

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("aic_") && a.len() > 40);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn a_viewer_cannot_configure() {
        let c = Caller {
            tenant: TenantId::new(),
            token_id: Uuid::nil(),
            role: Role::Viewer,
            scoped: false,
        };
        assert!(c.require(READ).is_ok());
        assert!(c.require(CONFIGURE).is_err());
    }
}
