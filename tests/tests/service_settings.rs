//! The services refuse a setting out of its bounds at start (exit 2, the setting named), before
//! they connect to anything: a worker started with a vendor time limit of 0 s would have failed
//! every call after sending it (an unknown outcome for each create), and a control plane with
//! a pool of no connections answered every call 503 after 5 s. So do a credential key list
//! naming one id twice, and a key id `keygen` could not print back readably.

use aic_tests::harness::TestEnv;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A key of the right shape: the settings checked here come before it is used.
const KEYS: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Runs `binary` (`args`) with only `env` and the keys, the database and the broker on a
/// port nothing listens on, and answers its exit code and standard error, or why it did not
/// stop by itself within 10 s (it took the setting and went on to connect).
fn refused(binary: &str, args: &[&str], env: (&str, &str)) -> Result<(i32, String), String> {
    let mut child = Command::new(TestEnv::binary(binary))
        .args(args)
        .env_clear()
        .env("AIC_CREDENTIAL_KEYS", KEYS)
        .env("AIC_DATABASE_URL", "postgres://postgres@127.0.0.1:9/none")
        .env("AIC_AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f")
        .env("AIC_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("AIC_LISTEN", "127.0.0.1:0")
        .env(env.0, env.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("piped"), &mut stderr)
                .expect("stderr");
            return Ok((status.code().unwrap_or(-1), stderr));
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{binary} took {}={} and ran on", env.0, env.1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A binary, its arguments, the setting given and what its refusal says.
type Case<'a> = (&'a str, &'a [&'a str], (&'a str, &'a str), &'a str);

/// Two keys of the same id: the later would have replaced the earlier, and every row sealed
/// with the earlier would no longer open.
const TWICE: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBE=";

#[test]
fn a_setting_out_of_bounds_stops_the_service_naming_it() {
    let cases: &[Case] = &[
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_VENDOR_TIMEOUT_SECS", "0"),
            "'0' for '--vendor-timeout-secs",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_QUOTA_RESERVE_PERCENT", "150"),
            "'150' for '--quota-reserve-percent <QUOTA_RESERVE_PERCENT>': 150 is not in 0..=50",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_QUOTA_RESERVE_PERCENT", "NaN"),
            "'NaN' for '--quota-reserve-percent",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_RETRY_BASE_MS", "0"),
            "'0' for '--retry-base-ms",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_RETRY_CAP_MS", "100"),
            "AIC_WORKER_RETRY_CAP_MS (100) must not be below AIC_WORKER_RETRY_BASE_MS (200)",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_WORKER_THREADS", "100000"),
            "'100000' for '--threads",
        ),
        (
            "aic-worker",
            &[],
            ("AIC_DATABASE_POOL_SIZE", "0"),
            "'0' for '--database-pool-size",
        ),
        // A character an operator's tools would read otherwise, and names RabbitMQ keeps.
        (
            "aic-worker",
            &[],
            ("AIC_AMQP_NAMESPACE", "aic.#"),
            "'aic.#' for '--amqp-namespace",
        ),
        (
            "aic-control-plane",
            &["serve"],
            ("AIC_AMQP_NAMESPACE", "amq"),
            "RabbitMQ keeps names beginning 'amq.' to itself",
        ),
        (
            "aic-control-plane",
            &["serve"],
            ("AIC_DATABASE_POOL_SIZE", "0"),
            "'0' for '--database-pool-size",
        ),
        // Past what a timestamp can go back: every hourly prune would have failed.
        (
            "aic-control-plane",
            &["serve"],
            ("AIC_AUDIT_KEEP_DAYS", "4000000000"),
            "'4000000000' for '--audit-keep-days",
        ),
        (
            "aic-control-plane",
            &["serve"],
            ("AIC_EXECUTIONS_KEEP_DAYS", "3000000"),
            "'3000000' for '--executions-keep-days",
        ),
    ];
    for (binary, args, env, expected) in cases {
        let (code, stderr) = refused(binary, args, *env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 2, "{binary} {env:?}: {stderr}");
        assert!(stderr.contains(expected), "{binary} {env:?}: {stderr}");
        assert!(!stderr.contains("AAAAAAAA"), "{stderr}");
    }
}

#[test]
fn a_key_id_given_twice_or_unreadable_stops_before_anything_is_opened() {
    for binary in ["aic-worker", "aic-control-plane"] {
        let args: &[&str] = if binary == "aic-worker" {
            &[]
        } else {
            &["serve"]
        };
        let (code, stderr) =
            refused(binary, args, ("AIC_CREDENTIAL_KEYS", TWICE)).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(code, 0, "{stderr}");
        assert!(
            stderr.contains("AIC_CREDENTIAL_KEYS lists key id 'k1' twice"),
            "{binary}: {stderr}"
        );
        assert!(
            !stderr.contains("AAAAAAAA") && !stderr.contains("BBBBBBBB"),
            "{stderr}"
        );
    }
    // `keygen` prints only an id the list reads back as given.
    for id in ["a:b", "a,b", ""] {
        let (code, stderr) = refused(
            "aic-control-plane",
            &["keygen", "--id", id],
            ("AIC_LOG_JSON", "false"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 2, "{id:?}: {stderr}");
        assert!(stderr.contains("is not a key id"), "{id:?}: {stderr}");
    }
}

#[test]
fn a_tenant_or_token_named_with_a_control_character_is_refused_before_the_database() {
    // The database on a dead port: a name taken would end in a failed connection instead.
    for args in [
        &["create-tenant", "--name", "Acme\nAdmin: granted"][..],
        &[
            "create-token",
            "--tenant",
            "Acme",
            "--role",
            "admin",
            "--name",
            "ci\u{202e}",
        ],
        &["create-tenant", "--name", "  "],
    ] {
        let (code, stderr) = refused("aic-control-plane", args, ("AIC_LOG_JSON", "false"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("'--name <NAME>'") && stderr.contains("the name must"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_never_shows_a_password_the_environment_holds() {
    let (db, amqp, keys) = (
        "pg-Pa55word",
        "amqp-Pa55word",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    for (binary, args) in [
        ("aic-control-plane", &["serve", "--help"][..]),
        ("aic-control-plane", &["migrate", "--help"]),
        ("aic-control-plane", &["prune-executions", "--help"]),
        ("aic-control-plane", &["dlq-replay", "--help"]),
        ("aic-worker", &["--help"]),
        ("aic-demo", &["--help"]),
    ] {
        let out = Command::new(TestEnv::binary(binary))
            .args(args)
            .env_clear()
            .env(
                "AIC_DATABASE_URL",
                format!("postgres://aic:{db}@db:5432/aic"),
            )
            .env("AIC_AMQP_URL", format!("amqp://aic:{amqp}@mq:5672/%2f"))
            .env(
                "AIC_DEMO_POSTGRES_URL",
                format!("postgres://aic:{db}@db/postgres"),
            )
            .env("AIC_DEMO_AMQP_URL", format!("amqp://aic:{amqp}@mq/%2f"))
            .env("AIC_CREDENTIAL_KEYS", format!("k1:{keys}"))
            .output()
            .expect("the binary runs");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} {args:?}");
        assert!(
            shown.contains("[env: AIC_") && shown.contains("_URL]"),
            "{binary} {args:?} no longer names its variables: {shown}"
        );
        for secret in [db, amqp, keys] {
            assert!(!shown.contains(secret), "{binary} {args:?} shows {secret}");
        }
    }
}
