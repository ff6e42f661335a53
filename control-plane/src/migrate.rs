//! Applies the SQL migrations under `migrations/` (embedded at build time) with refinery.

use secrecy::SecretString;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Applies pending migrations on a dedicated connection; returns how many ran.
pub async fn run(database_url: &SecretString) -> anyhow::Result<usize> {
    let mut client = aic_core::db::connect(database_url)
        .await
        .map_err(|e| anyhow::anyhow!("could not connect to PostgreSQL to migrate: {e}"))?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(report.applied_migrations().len())
}
