//! Retiring a credential key: `reseal-credentials` seals every connection again under the
//! active key — the same secrets, still bound to their row — so the old key can go; a row that
//! does not open is reported and left alone, and a dry run writes nothing. Nothing is re-sealed
//! while a running worker or control plane lacks the new key, unless forced: the tests of the
//! mechanics force it (their control plane, given the old key only, is not restarted), the
//! last test checks the refusal.

use aic_core::credentials::{Keyring, Sealed, SecretFields, connection_aad};
use aic_proto::{ConnectionId, TenantId};
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

/// The connection's sealed secrets as stored.
async fn sealed(env: &TestEnv, id: Uuid) -> Sealed {
    let row = env
        .query_one(
            "SELECT secret_key_id, secret_nonce, secret_ciphertext FROM connections WHERE id = $1",
            &[&id],
        )
        .await;
    Sealed {
        key_id: row.get(0),
        nonce: row.get(1),
        ciphertext: row.get(2),
    }
}

fn keyring(entries: &[&str], active: &str) -> Keyring {
    Keyring::parse(&SecretString::from(entries.join(",")), Some(active)).expect("keyring")
}

/// Seals the connection `id`'s `secrets` under a key no process is given any more (`k0`).
async fn reseal_under_a_gone_key(env: &TestEnv, id: Uuid, secrets: &SecretFields) {
    let gone_key = keyring(&[&Keyring::generate_entry("k0")], "k0");
    let stray = gone_key.seal(secrets, &connection_aad(env.tenant, ConnectionId(id)));
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE connections SET secret_key_id = $2, secret_nonce = $3, secret_ciphertext = $4 WHERE id = $1",
            &[&id, &stray.key_id, &stray.nonce, &stray.ciphertext],
        )
        .await
        .expect("stray key");
}

/// The same fields with the same values.
fn assert_same(a: &SecretFields, b: &SecretFields) {
    assert_eq!(a.names().collect::<Vec<_>>(), b.names().collect::<Vec<_>>());
    for name in a.names() {
        assert_eq!(
            a.get(name).map(ExposeSecret::expose_secret),
            b.get(name).map(ExposeSecret::expose_secret),
            "{name}"
        );
    }
}

/// The one `connection.resealed` event of the tenant is `id`'s, by the command, keys only.
async fn assert_audited(env: &TestEnv, id: Uuid) {
    let path = "/v1/audit-events?action=connection.resealed";
    let (_, events) = env.call(Method::GET, path, None).await;
    let events = events["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["target_id"], json!(id));
    assert_eq!(
        events[0]["detail"],
        json!({"from_key": "test", "to_key": "k2"})
    );
    let actor = (
        events[0]["actor_name"].as_str(),
        events[0]["actor_role"].as_str(),
    );
    assert_eq!(actor, (Some("reseal-credentials"), Some("operator")));
}

/// A control plane with one connection: it, the connection's id, and the key entry its
/// secrets are sealed under (`test`).
async fn one_connection() -> (TestEnv, Uuid, String) {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env
        .salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    let id: Uuid = conn["id"].as_str().expect("id").parse().expect("uuid");
    let old_entry = env.settings().1.credential_keys.expose_secret().to_string();
    (env, id, old_entry)
}

#[tokio::test]
async fn a_dry_run_opens_every_row_and_writes_nothing() {
    let (env, id, old_entry) = one_connection().await;
    let both = keyring(&[&old_entry, &Keyring::generate_entry("k2")], "k2");
    let before = sealed(&env, id).await;
    let dry = aic_control_plane::keys::reseal(&env.pool, &both, true, true)
        .await
        .expect("dry run");
    assert_eq!((dry.resealed, dry.unopened.len()), (1, 0), "{dry:?}");
    assert_eq!(dry.after.get("test"), Some(&1), "{dry:?}");
    let after = sealed(&env, id).await;
    assert_eq!(
        (after.key_id, after.ciphertext),
        (before.key_id, before.ciphertext)
    );
    env.stop().await;
}

#[tokio::test]
async fn resealing_moves_every_connection_to_the_active_key_and_reports_what_does_not_open() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let first = env
        .salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    let second = env
        .salesforce_connection("Other org", "s3cret-value", "s3cret-value")
        .await;
    let ids: Vec<Uuid> = [&first, &second]
        .iter()
        .map(|c| c["id"].as_str().expect("id").parse().expect("uuid"))
        .collect();
    let old_entry = env.settings().1.credential_keys.expose_secret().to_string();
    let new_entry = Keyring::generate_entry("k2");
    let old = keyring(&[&old_entry], "test");
    let both = keyring(&[&old_entry, &new_entry], "k2");
    let only_new = keyring(&[&new_entry], "k2");
    let aad = |id: Uuid| connection_aad(env.tenant, ConnectionId(id));
    let opened = old
        .open(&sealed(&env, ids[0]).await, &aad(ids[0]))
        .expect("opens");

    // A row whose key is not configured (a third key, long gone) is reported, not touched.
    reseal_under_a_gone_key(&env, ids[1], &opened).await;
    let run = aic_control_plane::keys::reseal(&env.pool, &both, false, true)
        .await
        .expect("reseal");
    assert_eq!(run.resealed, 1, "{run:?}");
    assert_eq!(run.unopened.len(), 1, "{run:?}");
    assert_eq!(
        (
            run.unopened[0].connection_id,
            run.unopened[0].key_id.as_str()
        ),
        (ids[1], "k0")
    );
    assert_eq!(
        run.unopened[0].reason,
        "credentials are sealed with key 'k0', which is not configured"
    );
    assert_eq!(run.after.get("k2"), Some(&1), "{run:?}");
    assert_eq!(run.after.get("k0"), Some(&1), "{run:?}");

    // The same secrets, under the new key alone, still bound to their row.
    let after = sealed(&env, ids[0]).await;
    assert_eq!(after.key_id, "k2");
    let reopened = only_new.open(&after, &aad(ids[0])).expect("opens under k2");
    assert_same(&reopened, &opened);
    assert!(
        old.open(&after, &aad(ids[0])).is_err(),
        "the old key still opens it"
    );
    let elsewhere = connection_aad(TenantId(Uuid::now_v7()), ConnectionId(ids[0]));
    assert!(
        only_new.open(&after, &elsewhere).is_err(),
        "unbound from its row"
    );

    // Each re-sealed row has its event in the tenant's trail, naming the keys only.
    assert_audited(&env, ids[0]).await;

    // Run again: nothing left to do but the row that does not open.
    let again = aic_control_plane::keys::reseal(&env.pool, &both, false, true)
        .await
        .expect("again");
    assert_eq!((again.resealed, again.unopened.len()), (0, 1), "{again:?}");
    env.stop().await;
}

#[tokio::test]
async fn the_command_prints_a_report_without_secrets_and_fails_while_a_row_does_not_open() {
    let env = TestEnv::start_with(Options::api_only()).await;
    env.salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    let (db, keys) = env.settings();
    let old_entry = keys.credential_keys.expose_secret().to_string();
    let run = |keys: String| {
        std::process::Command::new(TestEnv::binary("aic-control-plane"))
            .args(["reseal-credentials", "--force"])
            .env_clear()
            .env("AIC_DATABASE_URL", db.database_url.expose_secret())
            .env("AIC_CREDENTIAL_KEYS", keys)
            .env("AIC_CREDENTIAL_ACTIVE_KEY", "k2")
            .output()
            .expect("runs")
    };

    // Without the old key, the row does not open: reported, and the command fails.
    let new_entry = Keyring::generate_entry("k2");
    let out = run(new_entry.clone());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("1 connection(s) did not open"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["unopened"][0]["key_id"], "test", "{report}");

    let out = run(format!("{old_entry},{new_entry}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["resealed"], 1, "{report}");
    assert_eq!(report["after"], json!({"k2": 1}), "{report}");
    for secret in ["s3cret-value", &old_entry, &new_entry] {
        let key = secret.split_once(':').map_or(secret, |(_, k)| k);
        assert!(!stdout.contains(key) && !String::from_utf8_lossy(&out.stderr).contains(key));
    }
    env.stop().await;
}

/// The running processes as the fleet lists them: (kind, key ids) of each.
async fn fleet(env: &TestEnv) -> Vec<(String, Vec<String>)> {
    let client = env.pool.get().await.expect("db");
    let running = aic_core::fleet::running(&client).await.expect("the fleet");
    running.into_iter().map(|p| (p.kind, p.key_ids)).collect()
}

/// Waits until the fleet lists `expected`.
async fn wait_for_fleet(env: &TestEnv, expected: &[(&str, &[&str])]) {
    let expected: Vec<(String, Vec<String>)> = expected
        .iter()
        .map(|(kind, keys)| {
            (
                kind.to_string(),
                keys.iter().map(|k| k.to_string()).collect(),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    loop {
        let now = fleet(env).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the fleet is {now:?}, not {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A re-seal run without force: how many it re-sealed, and the kinds of the running processes
/// it found without the key, comma-separated.
async fn refused(env: &TestEnv, keyring: &Keyring) -> (u64, String) {
    let run = aic_control_plane::keys::reseal(&env.pool, keyring, false, false)
        .await
        .expect("reseal");
    let kinds: Vec<String> = run.lacking_key.into_iter().map(|p| p.kind).collect();
    (run.resealed, kinds.join(","))
}

/// Re-sealing under a key a running process does not hold would fail that process's
/// executions on every re-sealed connection: refused, naming the process, until each running
/// process holds it (a stopped one leaves the fleet), or forced.
#[tokio::test]
async fn nothing_is_resealed_while_a_running_process_lacks_the_active_key() {
    let (env, id, old_entry) = one_connection().await;
    let new_entry = Keyring::generate_entry("k2");
    let both = keyring(&[&old_entry, &new_entry], "k2");
    let worker = env.start_worker(|_| {}).await;
    wait_for_fleet(&env, &[("control-plane", &["test"]), ("worker", &["test"])]).await;

    let (db, _) = env.settings();
    let out = std::process::Command::new(TestEnv::binary("aic-control-plane"))
        .arg("fleet")
        .env("AIC_DATABASE_URL", db.database_url.expose_secret())
        .output()
        .expect("runs");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    let kinds: Vec<String> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["kind"].to_string()
        })
        .collect();
    assert_eq!(kinds, ["\"control-plane\"", "\"worker\""], "{listed}");

    let expected = (0, "control-plane,worker".to_string());
    assert_eq!(refused(&env, &both).await, expected);
    assert_eq!(sealed(&env, id).await.key_id, "test");
    let out = std::process::Command::new(TestEnv::binary("aic-control-plane"))
        .arg("reseal-credentials")
        .env("AIC_DATABASE_URL", db.database_url.expose_secret())
        .env("AIC_CREDENTIAL_KEYS", format!("{old_entry},{new_entry}"))
        .env("AIC_CREDENTIAL_ACTIVE_KEY", "k2")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("2 running process(es) do not hold the active key 'k2'")
            && said.contains("worker on ")
            && said.contains("nothing was re-sealed"),
        "{said}"
    );
    assert_eq!(sealed(&env, id).await.key_id, "test");

    // The worker restarted with both keys: only the control plane lacks it now.
    worker.shutdown().await;
    wait_for_fleet(&env, &[("control-plane", &["test"])]).await;
    let keys = SecretString::from(format!("{old_entry},{new_entry}"));
    let worker = env
        .start_worker(|args| {
            args.credentials.credential_keys = keys;
            args.credentials.credential_active_key = Some("k2".into());
        })
        .await;
    wait_for_fleet(
        &env,
        &[("control-plane", &["test"]), ("worker", &["k2", "test"])],
    )
    .await;
    assert_eq!(refused(&env, &both).await, (0, "control-plane".to_string()));

    let forced = aic_control_plane::keys::reseal(&env.pool, &both, false, true)
        .await
        .expect("reseal");
    assert_eq!((forced.resealed, forced.lacking_key.len()), (1, 1));
    assert_eq!(sealed(&env, id).await.key_id, "k2");
    worker.shutdown().await;
    env.stop().await;
}

/// The control plane's gauge of running processes without its active key, which an alert
/// reads: such a process cannot open credentials saved since.
#[tokio::test]
async fn the_control_plane_counts_running_processes_without_its_active_key() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let gauges = || async {
        let mut found = Vec::new();
        for series in [
            "aic_processes{kind=\"worker\"}",
            "aic_processes{kind=\"control-plane\"}",
            "aic_processes_without_active_key",
        ] {
            found.push(env.control_plane_sample(series).await);
        }
        found
    };
    let lone = SecretString::from(Keyring::generate_entry("k9"));
    let worker = env
        .start_worker(|args| {
            args.credentials.credential_keys = lone;
            args.credentials.credential_active_key = None;
        })
        .await;
    wait_for_fleet(&env, &[("control-plane", &["test"]), ("worker", &["k9"])]).await;
    assert_eq!(gauges().await, ["1", "1", "1"]);
    worker.shutdown().await;
    wait_for_fleet(&env, &[("control-plane", &["test"])]).await;
    assert_eq!(gauges().await, ["0", "1", "0"]);
    env.stop().await;
}
