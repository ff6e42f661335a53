//! Applies the SQL migrations under `migrations/` (embedded at build time) with refinery.

use secrecy::SecretString;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Applies pending migrations on a dedicated connection; returns how many ran.
pub async fn run(database_url: &SecretString) -> anyhow::Result<usize> {
    run_to(database_url, None).await
}

/// Applies pending migrations up to `version` included (all of them without one): an
/// upgrade's test writes data as an earlier release did, then runs the rest.
pub async fn run_to(database_url: &SecretString, version: Option<u16>) -> anyhow::Result<usize> {
    let mut client = aic_core::db::connect(database_url)
        .await
        .map_err(|e| anyhow::anyhow!("could not connect to PostgreSQL to migrate: {e}"))?;
    let target = match version {
        Some(v) => refinery::Target::Version(v.into()),
        None => refinery::Target::Latest,
    };
    let report = embedded::migrations::runner()
        .set_target(target)
        .run_async(&mut client)
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(report.applied_migrations().len())
}
