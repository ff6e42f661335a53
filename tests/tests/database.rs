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
    PrivatePostgres::start_tls_only(Path::new(&cert), Path::new(&key), None).await
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
    // Every session of the control plane's and the worker's pools is encrypted (the server
    // refuses others anyway: this says the sessions are there).
    let (encrypted, sessions) = pipeline_sessions(url, "s.ssl").await;
    println!("{encrypted} of {sessions} sessions encrypted");
    assert!(sessions >= 3, "{sessions} sessions");
    assert_eq!(encrypted, sessions);
}

/// Runs the pipeline (a Lead created) on the services connected to the database at `url`,
/// then counts the sessions of its pools passing `filter` (over `pg_stat_ssl s`), and all.
async fn pipeline_sessions(url: String, filter: &str) -> (i64, i64) {
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
    let row = env
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE {filter}), count(*) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend'"
            ),
            &[],
        )
        .await;
    env.stop().await;
    (row.get(0), row.get(1))
}

/// `aic-control-plane migrate` against the cluster with `query` after its URL: its exit and
/// what it printed.
fn migrate(pg: &PrivatePostgres, host: &str, query: &str) -> (bool, String) {
    migrate_with(pg, host, query, &[])
}

/// [`migrate`] with more environment variables.
fn migrate_with(
    pg: &PrivatePostgres,
    host: &str,
    query: &str,
    env: &[(&str, &str)],
) -> (bool, String) {
    let url = format!(
        "postgres://postgres:pw-not-echoed@{host}:{}/postgres{query}",
        pg.port
    );
    let out = Command::new(TestEnv::binary("aic-control-plane"))
        .arg("migrate")
        .env("AIC_DATABASE_URL", &url)
        .envs(env.iter().copied())
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
    // `system` is the operating system's store, which OpenSSL's variables replace as for libpq.
    let query = "?sslmode=verify-full&sslrootcert=system";
    let only_ca = [("SSL_CERT_FILE", ca.as_str()), ("SSL_CERT_DIR", "")];
    let (ok, text) = migrate_with(&pg, "localhost", query, &only_ca);
    assert!(ok, "the system's store as SSL_CERT_FILE names it: {text}");
    let empty = [
        ("SSL_CERT_FILE", "/nonexistent/certs.pem"),
        ("SSL_CERT_DIR", ""),
    ];
    let (ok, text) = migrate_with(&pg, "localhost", query, &empty);
    assert!(!ok, "connected with no CA: {text}");
    assert!(
        text.contains("no CA certificate in the system's store"),
        "{text}"
    );

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

/// A private cluster taking TLS only and authenticating by client certificate (`cert` in its
/// `pg_hba.conf`: signed by `pki`'s CA, the user's name in its CN), with a certificate for
/// the user `postgres` made as `pg.crt`, `pg.key`.
async fn cert_auth(pki: &Pki) -> PrivatePostgres {
    pki.sign("pg", "postgres", "extendedKeyUsage=clientAuth");
    let (cert, key, ca) = (
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    PrivatePostgres::start_tls_only(Path::new(&cert), Path::new(&key), Some(Path::new(&ca))).await
}

#[tokio::test]
async fn the_whole_pipeline_authenticates_by_client_certificate() {
    let pki = Pki::new();
    let pg = cert_auth(&pki).await;
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        pg.port,
        pki.path("ca.pem"),
        pki.path("pg.crt"),
        pki.path("pg.key")
    );
    // The server lets in no session without a certificate: these say the services' are there.
    let (by_certificate, sessions) = pipeline_sessions(url, "s.client_dn = '/CN=postgres'").await;
    println!("{by_certificate} of {sessions} sessions presented the certificate");
    assert!(sessions >= 3, "{sessions} sessions");
    assert_eq!(by_certificate, sessions);
}

#[tokio::test]
async fn a_missing_wrong_or_unusable_client_certificate_is_refused_saying_why() {
    let pki = Pki::new();
    let pg = cert_auth(&pki).await;
    let (ca, pg_crt, pg_key) = (pki.path("ca.pem"), pki.path("pg.crt"), pki.path("pg.key"));
    let (other_crt, other_key) = (pki.path("client.crt"), pki.path("client.key"));
    pki.openssl(&[
        "pkey",
        "-in",
        "pg.key",
        "-aes256",
        "-passout",
        "pass:x",
        "-out",
        "pg-enc.key",
    ]);
    let encrypted = pki.path("pg-enc.key");
    let (ok, text) = migrate(
        &pg,
        "localhost",
        &format!("?sslcert={pg_crt}&sslkey={pg_key}"),
    );
    assert!(ok, "{text}");

    let refused = |query: String, why: &str| {
        let (ok, text) = migrate(&pg, "localhost", &query);
        assert!(!ok, "{query} connected: {text}");
        assert!(text.contains(why), "{query}: expected {why:?} in {text}");
    };
    // What the server says.
    refused(
        format!("?sslmode=verify-full&sslrootcert={ca}"),
        "connection requires a valid client certificate",
    );
    refused(
        format!("?sslcert={other_crt}&sslkey={other_key}"),
        "certificate authentication failed for user \"postgres\"",
    );
    // What the service says before it connects.
    refused(
        format!("?sslcert={pg_crt}&sslkey={other_key}"),
        &format!("sslkey {other_key} is not the key of sslcert {pg_crt}"),
    );
    refused(
        format!("?sslcert={pg_crt}&sslkey={encrypted}"),
        "no unencrypted private key in it",
    );
    refused(
        format!("?sslcert={pg_key}&sslkey={pg_key}"),
        "no certificate in it",
    );
    refused(
        format!("?sslcert={pg_crt}&sslkey={pg_key}&sslpassword=x"),
        "`sslpassword`: encrypted keys are not supported",
    );
    refused(
        format!("?sslcert={pg_crt}"),
        "sslcert and sslkey go together",
    );
    // A key others may read is a secret in name only, as libpq holds; one its group may read
    // (a Kubernetes Secret's, mode 0440 with the pod's fsGroup) is used.
    let with_mode = |name: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = pki.path(name);
        std::fs::copy(&pg_key, &path).expect("a copy of the key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    };
    let open = with_mode("pg-open.key", 0o644);
    refused(
        format!("?sslcert={pg_crt}&sslkey={open}"),
        &format!("sslkey {open} has permissions 0644: others may read it"),
    );
    let grouped = with_mode("pg-group.key", 0o440);
    let (ok, text) = migrate(
        &pg,
        "localhost",
        &format!("?sslcert={pg_crt}&sslkey={grouped}"),
    );
    assert!(ok, "{text}");
}

/// The serial of the client certificate the session `client` presented.
async fn presented(client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one(
            "SELECT client_serial::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    row.get::<_, Option<String>>(0).expect("a certificate")
}

/// A certificate renewed in place (cert-manager, Vault) is presented from the pool's next
/// connection, with no restart; one caught half-written leaves the last good one presented.
#[tokio::test]
async fn a_renewed_client_certificate_is_presented_from_the_next_connection() {
    let pki = Pki::new();
    let pg = cert_auth(&pki).await;
    let (live_crt, live_key) = (pki.path("live.crt"), pki.path("live.key"));
    let renew = |from: &str| {
        std::fs::copy(pki.path(&format!("{from}.crt")), &live_crt).expect("crt");
        std::fs::copy(pki.path(&format!("{from}.key")), &live_key).expect("key");
    };
    renew("pg");
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={live_crt}&sslkey={live_key}",
        pg.port,
        pki.path("ca.pem"),
    );
    let pool = aic_core::db::pool(
        &secrecy::SecretString::from(url),
        4,
        aic_core::db::Planning::PerExecution,
    )
    .expect("a pool");
    let first = pool.get().await.expect("a connection");
    let before = presented(&first).await;

    pki.sign("pg2", "postgres", "extendedKeyUsage=clientAuth");
    renew("pg2");
    let second = pool.get().await.expect("a connection after the renewal");
    let after = presented(&second).await;
    assert_ne!(after, before, "the renewed certificate was not presented");
    assert_eq!(presented(&first).await, before);

    std::fs::write(&live_crt, "-----BEGIN CERTIFICATE-----\nhalf").expect("a torn write");
    let third = pool
        .get()
        .await
        .expect("a connection with the last good certificate");
    assert_eq!(presented(&third).await, after);
}
