//! A database of a test's own on the shared server, outside any [`super::TestEnv`]: for a test
//! of the schema itself (an upgrade over data an earlier release wrote).

use secrecy::SecretString;

/// A database migrated up to a version, dropped when this drops — however the test ends.
pub struct ScratchDatabase {
    name: String,
    /// Its URL.
    pub url: SecretString,
}

impl ScratchDatabase {
    /// Creates `aic_test_<random>` and applies the migrations up to `version` included.
    pub async fn migrated_to(version: u16) -> Self {
        let name = format!("aic_test_{}", uuid::Uuid::new_v4().simple());
        let url = super::fresh_database(&name)
            .await
            .expect("Postgres must be running (bash deploy/local/services.sh start)");
        // Owned from here: a refused migration still drops the database.
        let scratch = Self {
            name,
            url: SecretString::from(url),
        };
        aic_control_plane::migrate::run_to(&scratch.url, Some(version))
            .await
            .expect("migrations apply");
        scratch
    }

    /// A connection to it.
    pub async fn client(&self) -> tokio_postgres::Client {
        aic_core::db::connect(&self.url)
            .await
            .expect("scratch database")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        super::cleanup::run_to_end(async move {
            let admin = SecretString::from(super::pg_admin_url());
            if let Ok(client) = aic_core::db::connect(&admin).await {
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = client.batch_execute(&drop).await;
            }
        });
    }
}
