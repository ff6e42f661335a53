//! The contract's clients in other languages, as `proto/AMQP.md` prints them: its Python (pika)
//! and Node.js (amqplib) blocks are taken from the document and run unchanged against a real
//! worker, so the document cannot drift from what works. Each enqueues a Create Lead and
//! prints the result it reads (the reply queue; the results exchange), which must be the
//! contract's result, the Lead really created.
//!
//! The client libraries are installed once, pinned, into `target/client-deps/` (from PyPI and
//! the npm registry, which this machine's kind reaches); an install that fails fails the test,
//! naming the command.

use aic_tests::harness::TestEnv;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const PIKA: &str = "pika==1.3.2";
const AMQPLIB: &str = "amqplib@2.3.1";

/// The first fenced block of `lang` in the AMQP contract.
fn documented(lang: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/AMQP.md");
    let doc = std::fs::read_to_string(path).expect("proto/AMQP.md");
    let fence = format!("```{lang}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} block"))
        + fence.len();
    let len = doc[start..].find("```").expect("the block ends");
    doc[start..start + len].to_string()
}

/// `target/client-deps/<kind>`, beside the workspace's builds.
fn deps_dir(kind: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("the target directory");
    target.join("client-deps").join(kind)
}

/// Runs `program` to completion (at most `limit`); its standard output, or a failure naming
/// the command and what it printed.
async fn run(
    program: &str,
    args: &[&str],
    cwd: &Path,
    envs: &[(&str, String)],
    limit: Duration,
) -> String {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let what = format!("{program} {}", args.join(" "));
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{what}` still running after {limit:?}"))
        .unwrap_or_else(|e| panic!("`{what}` could not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{what}` failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Installs into `dir` once: `install` fills a fresh folder beside it, renamed into place
/// when complete, so an interrupted install is never taken for a finished one.
async fn installed(dir: PathBuf, marker: &str, install: impl AsyncFnOnce(&Path)) -> PathBuf {
    if dir.join(marker).exists() {
        return dir;
    }
    let fresh = dir.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&fresh).expect("a folder for the client library");
    install(&fresh).await;
    // Another run may have finished first: its copy is as good.
    if std::fs::rename(&fresh, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&fresh);
    }
    assert!(dir.join(marker).exists(), "{} is incomplete", dir.display());
    dir
}

/// The environment a client reads: where the broker is, the namespace, whom to run.
fn client_env(env: &TestEnv, automation: &str) -> Vec<(&'static str, String)> {
    let namespace = env
        .names
        .executions_exchange
        .strip_suffix(".executions")
        .expect("the namespace")
        .to_string();
    vec![
        ("AIC_AMQP_URL", aic_tests::harness::amqp_url()),
        ("AIC_AMQP_NAMESPACE", namespace),
        ("AIC_TENANT", env.tenant.to_string()),
        ("AIC_AUTOMATION", automation.to_string()),
    ]
}

/// What a client printed is the contract's result of a Lead created in Salesforce from
/// `last_name` and `company`, recorded in the ledger as from `source`.
async fn assert_lead_created(
    env: &TestEnv,
    printed: &str,
    automation: &str,
    (last_name, company): (&str, &str),
    source: &str,
) {
    let result: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("the client printed no JSON result ({e}): {printed}"));
    let schema: Value =
        serde_json::from_str(include_str!("../../proto/schemas/execution-result.v1.json"))
            .expect("the result schema");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&result)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}: {result}");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["tenant_id"], env.tenant.to_string().as_str());
    assert_eq!(result["automation_id"], automation);
    let lead = result["output"]["id"].as_str().expect("the Lead's id");
    let leads = env.sandbox.state.salesforce.records("Lead");
    let (_, fields) = leads
        .iter()
        .find(|(id, _)| id == lead)
        .unwrap_or_else(|| panic!("no Lead {lead} in Salesforce: {leads:?}"));
    assert_eq!(fields["LastName"], last_name);
    assert_eq!(fields["Company"], company);

    let id = uuid::Uuid::parse_str(result["execution_id"].as_str().expect("id")).expect("uuid");
    let row = env
        .query_one(
            "SELECT status, source FROM executions WHERE id = $1",
            &[&id],
        )
        .await;
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some(source));
}

#[tokio::test]
async fn the_python_client_of_the_contract_runs_as_printed() {
    let deps = installed(deps_dir("python"), "pika", async |dir: &Path| {
        let target = dir.to_str().expect("a UTF-8 path");
        let quiet = [
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ];
        let args: Vec<&str> = ["-m", "pip", "install"]
            .into_iter()
            .chain(quiet)
            .chain(["--target", target, PIKA])
            .collect();
        run(
            "python3",
            &args,
            dir,
            &[("PIP_ROOT_USER_ACTION", "ignore".into())],
            Duration::from_secs(180),
        )
        .await;
    })
    .await;
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let script = deps.join(format!("client-{}.py", env.tenant));
    std::fs::write(&script, documented("python")).expect("the script");
    let mut vars = client_env(&env, &automation);
    vars.push(("PYTHONPATH", deps.display().to_string()));
    let printed = run(
        "python3",
        &[script.to_str().expect("path")],
        &deps,
        &vars,
        Duration::from_secs(90),
    )
    .await;
    let _ = std::fs::remove_file(&script);
    let lead = ("Curie", "Radium Ltd");
    assert_lead_created(&env, &printed, &automation, lead, "python-client").await;
}

#[tokio::test]
async fn the_node_client_of_the_contract_runs_as_printed() {
    let deps = installed(
        deps_dir("node"),
        "node_modules/amqplib",
        async |dir: &Path| {
            let prefix = dir.to_str().expect("a UTF-8 path");
            let quiet = ["--no-audit", "--no-fund", "--silent"];
            let args: Vec<&str> = ["install"]
                .into_iter()
                .chain(quiet)
                .chain(["--prefix", prefix, AMQPLIB])
                .collect();
            run("npm", &args, dir, &[], Duration::from_secs(180)).await;
        },
    )
    .await;
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    // An ES module finds its imports from its own folder: the script sits beside node_modules.
    let script = deps.join(format!("client-{}.mjs", env.tenant));
    std::fs::write(&script, documented("js")).expect("the script");
    let printed = run(
        "node",
        &[script.to_str().expect("path")],
        &deps,
        &client_env(&env, &automation),
        Duration::from_secs(90),
    )
    .await;
    let _ = std::fs::remove_file(&script);
    let lead = ("Lovelace", "Analytical Engines");
    assert_lead_created(&env, &printed, &automation, lead, "node-client").await;
}
