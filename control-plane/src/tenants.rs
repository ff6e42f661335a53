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

/// Issues a token for a tenant found by name.
pub async fn create_token(
    pool: &Pool,
    tenant: &str,
    role: &str,
    label: &str,
) -> anyhow::Result<IssuedToken> {
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("role '{role}' is not one of admin, editor, viewer, service")
    })?;
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT id FROM tenants WHERE name = $1", &[&tenant])
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant named '{tenant}'"))?;
    issue(pool, TenantId(row.get(0)), role, label).await
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
