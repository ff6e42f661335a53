//! The services' connections to PostgreSQL.
//!
//! TLS, as `sslmode` and `sslrootcert` in `AIC_DATABASE_URL` ask (libpq's modes), against a
//! private cluster that takes TLS connections only, its certificate (for `localhost` alone)
//! signed by a CA made for the test: the whole pipeline runs over a verified connection, and
//! each mode connects or refuses as libpq would, saying why. What a failure says: the server's
//! own words reach the logs, the failing row does not. And each pool's planner settings, made
//! once per connection rather than in the startup packet, which poolers refuse.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::pki::Pki;
use aic_tests::private::PrivatePostgres;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A private cluster taking TLS only, with `pki`'s server certificate.
async fn tls_only(pki: &Pki) -> PrivatePostgres {
    let (cert, key) = (pki.path("server.crt"), pki.path("server.key"));
    PrivatePostgres::start_tls_only(Path::new(&cert), Path::new(&key)).await
}

#[tokio::test]
async fn the_whole_pipeline_runs_over_a_verified_tls_connection() {
    let pki = Pki::new();
    let pg = tls_only(&pki).await;
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port,
        pki.path("ca.pem")
    );
    let env = TestEnv::start_with(Options {
        pg_admin_url: Some(url),
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let done = env
        .run(&lead, json!({"LastName": "Hopper", "Company": "Navy"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // Every session of the control plane's and the worker's pools is encrypted (the server
    // refuses others anyway: this says the sessions are there).
    let row = env
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend'",
            &[],
        )
        .await;
    let (encrypted, sessions): (i64, i64) = (row.get(0), row.get(1));
    println!("{encrypted} of {sessions} sessions encrypted");
    assert!(sessions >= 3, "{sessions} sessions");
    assert_eq!(encrypted, sessions);
    env.stop().await;
}

/// `aic-control-plane migrate` against the cluster with `query` after its URL: its exit and
/// what it printed.
fn migrate(pg: &PrivatePostgres, host: &str, query: &str) -> (bool, String) {
    let url = format!(
        "postgres://postgres:pw-not-echoed@{host}:{}/postgres{query}",
        pg.port
    );
    let out = Command::new(TestEnv::binary("aic-control-plane"))
        .arg("migrate")
        .env("AIC_DATABASE_URL", &url)
        .output()
        .expect("aic-control-plane runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("pw-not-echoed"),
        "the password leaked: {text}"
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn each_sslmode_connects_or_refuses_as_libpq_would_saying_why() {
    let pki = Pki::new();
    let pg = tls_only(&pki).await;
    let (ca, other) = (pki.path("ca.pem"), pki.path("other-ca.pem"));
    let goes = |host: &str, query: String| {
        let (ok, text) = migrate(&pg, host, &query);
        assert!(ok, "{host} {query}: {text}");
    };
    // Unchecked: the default (prefer) and require take any certificate.
    goes("localhost", String::new());
    goes("127.0.0.1", "?sslmode=require".into());
    // Checked: the chain, and for verify-full the name the certificate gives.
    goes(
        "localhost",
        format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    goes("127.0.0.1", format!("?sslmode=verify-ca&sslrootcert={ca}"));
    goes("127.0.0.1", format!("?sslmode=require&sslrootcert={ca}"));

    let refused = |host: &str, query: String, why: &str| {
        let (ok, text) = migrate(&pg, host, &query);
        assert!(!ok, "{host} {query} connected: {text}");
        assert!(
            text.contains(why),
            "{host} {query}: expected {why:?} in {text}"
        );
    };
    refused("localhost", "?sslmode=disable".into(), "no encryption");
    refused(
        "127.0.0.1",
        format!("?sslmode=verify-full&sslrootcert={ca}"),
        "certificate not valid for name \"127.0.0.1\"",
    );
    refused(
        "localhost",
        format!("?sslmode=verify-full&sslrootcert={other}"),
        "UnknownIssuer",
    );
    refused(
        "localhost",
        "?sslmode=require&sslrootcert=system".into(),
        "UnknownIssuer",
    );
    refused(
        "localhost",
        "?sslmode=verify-full".into(),
        "sslrootcert, which is not set",
    );
    refused(
        "localhost",
        "?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem".into(),
        "sslrootcert /nonexistent/ca.pem",
    );
    refused("localhost", "?sslmode=always".into(), "sslmode `always`");
}

/// What PostgreSQL said reaches the logs (tokio-postgres's own text is only "db error"), as
/// severity, message and SQLSTATE — without the detail, which quotes the failing row.
#[tokio::test]
async fn a_database_error_says_what_the_server_said_but_not_the_row() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let client = env.pool.get().await.expect("db");
    let e = client
        .query_one("SELECT 1 / 0", &[])
        .await
        .expect_err("division by zero");
    assert_eq!(
        e.to_string(),
        "db error",
        "tokio-postgres keeps the rest to its cause"
    );
    let said = aic_core::with_causes(&e);
    assert_eq!(
        said, "db error: ERROR: division by zero (SQLSTATE 22012)",
        "{said}"
    );
    let e = client
        .batch_execute(
            "CREATE TEMP TABLE t (a text NOT NULL, b text NOT NULL); \
             INSERT INTO t VALUES ('row-marker', NULL)",
        )
        .await
        .expect_err("not null");
    let said = aic_core::with_causes(&e);
    assert!(said.contains("(SQLSTATE 23502)"), "{said}");
    assert!(
        !said.contains("row-marker"),
        "the failing row leaked: {said}"
    );
    env.stop().await;
}

/// Each pool's connections plan as its statements need (`aic_core::db::Planning`), set by a
/// statement once a connection is made: PgBouncer refuses them as the startup packet's
/// `options` ("unsupported startup parameter: options").
#[tokio::test]
async fn each_pool_plans_as_its_statements_need() {
    use aic_core::db::Planning;
    let env = TestEnv::start_with(Options::api_only()).await;
    let (db, _) = env.settings();
    for (planning, expected) in [
        (Planning::PerExecution, ["force_custom_plan", "on"]),
        (Planning::KeyLookups, ["force_generic_plan", "off"]),
    ] {
        let pool = aic_core::db::pool(&db.database_url, 2, planning).expect("a pool");
        let client = pool.get().await.expect("a connection");
        let row = client
            .query_one(
                "SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan')",
                &[],
            )
            .await
            .expect("the settings");
        let found = [row.get::<_, String>(0), row.get::<_, String>(1)];
        assert_eq!(found, expected, "{planning:?}");
    }
    env.stop().await;
}
