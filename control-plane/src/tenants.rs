//! Creating tenants and tokens (used by the CLI and by tests).

use crate::auth::{Role, hash_token, new_token};
use aic_proto::TenantId;
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

/// A token, shown once.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Token id.
    pub token_id: Uuid,
    /// Role.
    pub role: &'static str,
    /// The bearer token itself: store it now, it cannot be read again.
    pub token: String,
}

/// Creates a tenant with an admin token (`aic-control-plane create-tenant`), its
/// `token.issued` event the first of the tenant's audit trail, by the command.
pub async fn create_tenant(pool: &Pool, name: &str) -> anyhow::Result<IssuedToken> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "tenant name must not be blank");
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let tenant = TenantId::new();
    let inserted = tx
        .execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name_key(name)) DO NOTHING",
            &[&tenant.0, &name],
        )
        .await?;
    if inserted == 0 {
        let existing: String = tx
            .query_opt(
                "SELECT name FROM tenants WHERE name_key(name) = name_key($1)",
                &[&name],
            )
            .await?
            .map_or_else(|| name.to_string(), |row| row.get(0));
        anyhow::bail!(
            "a tenant named '{existing}' already exists (names differing only in case, \
             spacing, character widths or invisible characters are one name)"
        );
    }
    let new = NewToken {
        tenant,
        role: Role::Admin,
        name: "initial admin",
        created_by: None,
        expires_at: None,
        scope: None,
    };
    let issued = issue_by_operator(&tx, &new, "create-tenant", name).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Issues a token for a tenant found by name (`aic-control-plane create-token`), limited to
/// `automations` when there are any (a service token's only), with its `token.issued` event
/// in the tenant's audit trail, by the command.
pub async fn create_token(
    pool: &Pool,
    tenant: &str,
    role: &str,
    label: &str,
    automations: &[Uuid],
) -> anyhow::Result<IssuedToken> {
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("role '{role}' is not one of admin, editor, viewer, service")
    })?;
    anyhow::ensure!(
        automations.is_empty() || role == Role::Service,
        "--automation limits a service token only; a {role} token reaches every automation"
    );
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Found as its name reads (tenants are unique so): `ACME` finds `acme`.
    let row = tx
        .query_opt(
            "SELECT id, name FROM tenants WHERE name_key(name) = name_key($1)",
            &[&tenant.trim()],
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant named '{tenant}'"))?;
    let tenant: &str = row.get(1);
    let scope = (!automations.is_empty()).then(|| distinct(automations.iter().copied()));
    let new = NewToken {
        tenant: TenantId(row.get(0)),
        role,
        name: label,
        created_by: None,
        expires_at: None,
        scope: scope.as_deref(),
    };
    let issued = issue_by_operator(&tx, &new, "create-token", tenant).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Writes `new` (of the tenant named `tenant`) with its `token.issued` event by the operator's
/// `command`, in `tx`, which the caller commits.
async fn issue_by_operator(
    tx: &deadpool_postgres::Transaction<'_>,
    new: &NewToken<'_>,
    command: &str,
    tenant: &str,
) -> anyhow::Result<IssuedToken> {
    let (id, token) = match insert_token(tx, new).await? {
        Ok(issued) => issued,
        Err(missing) => anyhow::bail!("there is no automation {missing} in tenant '{tenant}'"),
    };
    let target = crate::audit::Target { id, name: new.name };
    let action = crate::audit::Action::TokenIssued;
    crate::audit::by_operator(tx, new.tenant, command, action, target, new.issued_detail()).await?;
    Ok(IssuedToken {
        tenant_id: new.tenant,
        token_id: id,
        role: new.role.as_str(),
        token,
    })
}

/// A token to issue.
#[derive(Debug)]
pub(crate) struct NewToken<'a> {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its role.
    pub role: Role,
    /// Who or what holds it.
    pub name: &'a str,
    /// The token that issued it (none from the command line).
    pub created_by: Option<Uuid>,
    /// When it stops working by itself.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The automations it is limited to ([`distinct`]; none: every one).
    pub scope: Option<&'a [Uuid]>,
}

impl NewToken<'_> {
    /// Its `token.issued` event's detail.
    pub(crate) fn issued_detail(&self) -> serde_json::Value {
        let mut detail =
            serde_json::json!({"role": self.role.as_str(), "expires_at": self.expires_at});
        if let Some(automations) = self.scope {
            detail["automations"] = serde_json::json!(automations);
        }
        detail
    }
}

/// `ids` sorted, each once: a token's scope as it is stored and shown.
pub(crate) fn distinct(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Writes `new` (and its scope): its id and the bearer token, or the first automation of its
/// scope that is not its tenant's (then nothing is to be committed).
pub(crate) async fn insert_token(
    client: &impl deadpool_postgres::GenericClient,
    new: &NewToken<'_>,
) -> Result<Result<(Uuid, String), Uuid>, tokio_postgres::Error> {
    let token = new_token();
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, created_by, expires_at, scoped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &new.tenant.0,
                &new.name,
                &new.role.as_str(),
                &hash_token(&token),
                &new.created_by,
                &new.expires_at,
                &new.scope.is_some(),
            ],
        )
        .await?;
    let Some(automations) = new.scope else {
        return Ok(Ok((id, token)));
    };
    let known = client
        .query(
            "INSERT INTO api_token_automations (token_id, automation_id) \
             SELECT $1, a.id FROM automations a WHERE a.tenant_id = $2 AND a.id = ANY($3) \
             RETURNING automation_id",
            &[&id, &new.tenant.0, &automations],
        )
        .await?;
    let known: Vec<Uuid> = known.iter().map(|r| r.get(0)).collect();
    Ok(match automations.iter().find(|a| !known.contains(a)) {
        Some(missing) => Err(*missing),
        None => Ok((id, token)),
    })
}

/// Issues a token for a tenant id.
pub async fn issue(
    pool: &Pool,
    tenant: TenantId,
    role: Role,
    label: &str,
) -> anyhow::Result<IssuedToken> {
    let client = pool.get().await?;
    let new = NewToken {
        tenant,
        role,
        name: label,
        created_by: None,
        expires_at: None,
        scope: None,
    };
    let (id, token) = insert_token(&client, &new)
        .await?
        .map_err(|missing| anyhow::anyhow!("there is no automation {missing}"))?;
    Ok(IssuedToken {
        tenant_id: tenant,
        token_id: id,
        role: role.as_str(),
        token,
    })
}
