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

/// Creates a tenant with an admin token.
pub async fn create_tenant(pool: &Pool, name: &str) -> anyhow::Result<IssuedToken> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "tenant name must not be blank");
    let client = pool.get().await?;
    let tenant = TenantId::new();
    let inserted = client
        .execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&tenant.0, &name],
        )
        .await?;
    anyhow::ensure!(inserted == 1, "a tenant named '{name}' already exists");
    issue(pool, tenant, Role::Admin, "initial admin").await
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
    let row = tx
        .query_opt("SELECT id FROM tenants WHERE name = $1", &[&tenant])
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant named '{tenant}'"))?;
    let tenant_name = tenant;
    let tenant = TenantId(row.get(0));
    let token = new_token();
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, scoped) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &tenant.0,
            &label,
            &role.as_str(),
            &hash_token(&token),
            &!automations.is_empty(),
        ],
    )
    .await?;
    let mut scope: Vec<Uuid> = automations.to_vec();
    scope.sort();
    scope.dedup();
    if let Some(missing) = limit_token(&tx, tenant, id, &scope).await? {
        anyhow::bail!("there is no automation {missing} in tenant '{tenant_name}'");
    }
    let mut detail = serde_json::json!({"role": role.as_str(), "expires_at": null});
    if !scope.is_empty() {
        detail["automations"] = serde_json::json!(scope);
    }
    let target = crate::audit::Target { id, name: label };
    crate::audit::by_operator(
        &tx,
        tenant,
        "create-token",
        crate::audit::Action::TokenIssued,
        target,
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedToken {
        tenant_id: tenant,
        token_id: id,
        role: role.as_str(),
        token,
    })
}

/// Limits token `id` to `automations` of `tenant` (none: nothing to record); the first of them
/// that is not the tenant's, if any.
pub(crate) async fn limit_token(
    client: &impl deadpool_postgres::GenericClient,
    tenant: TenantId,
    id: Uuid,
    automations: &[Uuid],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    if automations.is_empty() {
        return Ok(None);
    }
    let known = client
        .query(
            "INSERT INTO api_token_automations (token_id, automation_id) \
             SELECT $1, a.id FROM automations a WHERE a.tenant_id = $2 AND a.id = ANY($3) \
             RETURNING automation_id",
            &[&id, &tenant.0, &automations],
        )
        .await?;
    let known: Vec<Uuid> = known.iter().map(|r| r.get(0)).collect();
    Ok(automations.iter().find(|a| !known.contains(a)).copied())
}

/// Issues a token for a tenant id.
pub async fn issue(
    pool: &Pool,
    tenant: TenantId,
    role: Role,
    label: &str,
) -> anyhow::Result<IssuedToken> {
    let client = pool.get().await?;
    let token = new_token();
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &tenant.0, &label, &role.as_str(), &hash_token(&token)],
        )
        .await?;
    Ok(IssuedToken {
        tenant_id: tenant,
        token_id: id,
        role: role.as_str(),
        token,
    })
}
