//! Retiring a credential key: `reseal-credentials` seals every connection again under the
//! active key — the same secrets, still bound to their row — so the old key can go; a row that
//! does not open is reported and left alone, and a dry run writes nothing.

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

#[tokio::test]
async fn a_dry_run_opens_every_row_and_writes_nothing() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let conn = env
        .salesforce_connection("Org", "s3cret-value", "s3cret-value")
        .await;
    let id: Uuid = conn["id"].as_str().expect("id").parse().expect("uuid");
    let old_entry = env.settings().1.credential_keys.expose_secret().to_string();
    let both = keyring(&[&old_entry, &Keyring::generate_entry("k2")], "k2");
    let before = sealed(&env, id).await;
    let dry = aic_control_plane::keys::reseal(&env.pool, &both, true)
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
    let run = aic_control_plane::keys::reseal(&env.pool, &both, false)
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
    let again = aic_control_plane::keys::reseal(&env.pool, &both, false)
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
            .args(["reseal-credentials"])
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
