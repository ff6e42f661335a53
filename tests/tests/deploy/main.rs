//! What `deploy/` hands an SRE holds against the real binaries: every metric and label value the
//! alert rules and the dashboard read is one a running worker or control plane exports (the
//! control plane's by route template, never by id), the queue gauges report
//! RabbitMQ's real depths, every variable a manifest sets is one the binary it is given to
//! reads, and the probes, ports, grace period and autoscaled queue match what the binaries do.
//! Nothing here needs a cluster: the manifests are read as YAML and checked against the
//! workspace's own binaries and a worker started on the shared RabbitMQ and PostgreSQL.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

mod manifests;
mod promql;
use promql::{exposition, selectors};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// Every Kubernetes document under `deploy/kubernetes`, with the file it came from.
fn manifests() -> Vec<(String, Yaml)> {
    let mut files: Vec<_> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/kubernetes");
    files
        .into_iter()
        .flat_map(|p| {
            let rel = format!(
                "kubernetes/{}",
                p.file_name().expect("name").to_string_lossy()
            );
            yaml_docs(&rel)
                .into_iter()
                .filter(|d| !d.is_null())
                .map(move |d| (rel.clone(), d))
        })
        .collect()
}

fn kind_named<'a>(docs: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/kubernetes"))
}

/// Every PromQL expression of the rules file and the dashboard, with where it came from.
fn expressions() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let rules = yaml_docs("prometheus/aic-rules.yml");
    for group in rules[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert or record");
            exprs.push((
                format!("rule {name}"),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/aic.json")).expect("dashboard JSON");
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push((
                format!("panel {}", panel["title"]),
                target["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    for var in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = var["query"]["query"].as_str() {
            exprs.push((format!("variable {}", var["name"]), q.to_string()));
        }
    }
    exprs
}

#[tokio::test]
async fn every_series_the_rules_and_dashboard_read_is_exported_with_real_queue_depths() {
    let env = TestEnv::start().await;
    // Two dead letters and three parked retries, put straight into the worker's queues.
    let ch = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    let delay_queue = &env.names.delay_queues.last().expect("a delay tier").1;
    for (queue, n) in [(&env.names.dead_letter_queue, 2), (delay_queue, 3)] {
        for _ in 0..n {
            aic_core::amqp::publish_confirmed(
                &ch,
                "",
                queue,
                b"{}",
                aic_core::amqp::json_properties("test"),
                true,
            )
            .await
            .expect("published");
        }
    }
    let text = env.metrics().await;
    let mut exported = exposition(&text);
    // The control plane's, after a request or two of its own.
    let (status, _) = env.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(status, 200);
    let missing = uuid::Uuid::new_v4().to_string();
    let (status, _) = env
        .call(Method::GET, &format!("/v1/automations/{missing}"), None)
        .await;
    assert_eq!(status, 404);
    let http = reqwest::Client::new();
    let api_text = http
        .get(format!("{}/metrics", env.api))
        .send()
        .await
        .expect("control plane /metrics")
        .text()
        .await
        .expect("text");
    let api = exposition(&api_text);
    let requests = &api["aic_http_requests_total"];
    for (route, status) in [("/v1/connections", "200"), ("/v1/automations/{id}", "404")] {
        assert!(
            requests.iter().any(|s| {
                s.get("route").map(String::as_str) == Some(route)
                    && s.get("status").map(String::as_str) == Some(status)
                    && s.get("method").map(String::as_str) == Some("GET")
            }),
            "no GET {route} {status} in\n{api_text}"
        );
    }
    assert!(
        !api_text.contains(&missing),
        "an id in a label:\n{api_text}"
    );
    // Its connections, this scrape's among them, against its limit.
    let gauge = |name: &str| {
        api_text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<i64>().ok())
    };
    let limit = aic_core::http::MAX_CONNECTIONS as i64;
    assert_eq!(gauge("aic_http_connections_limit "), Some(limit));
    let open = gauge("aic_http_connections_open ");
    assert!(open.is_some_and(|n| n >= 1), "{api_text}");
    for (name, series) in api {
        assert!(
            exported.insert(name.clone(), series).is_none(),
            "{name} is exported by both services"
        );
    }
    let value = |line: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(line).map(str::trim))
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
            .to_string()
    };
    assert_eq!(value(r#"aic_queue_messages{queue="dead_letters"}"#), "2");
    assert_eq!(value(r#"aic_queue_messages{queue="delayed"}"#), "3");
    assert_eq!(value(r#"aic_queue_messages{queue="executions"}"#), "0");
    assert_eq!(value("aic_queue_consumers"), "1");
    // Series the alerts count exist from start-up, at zero.
    assert_eq!(
        value(r#"aic_dead_letters_total{reason="invalid_json"}"#),
        "0"
    );

    let mut checked = 0;
    for (whence, expr) in expressions() {
        for sel in selectors(&expr) {
            // Keyed by sample name: a histogram's `_bucket`, `_count` and `_sum` each have theirs.
            let series = exported.get(&sel.metric).unwrap_or_else(|| {
                panic!(
                    "{whence} reads {}, which neither the worker nor the control plane exports",
                    sel.metric
                )
            });
            for (label, op, value) in &sel.matchers {
                if value.starts_with('$') || op.starts_with('!') {
                    continue;
                }
                let wanted: Vec<&str> = if op == "=~" {
                    value.split('|').collect()
                } else {
                    vec![value.as_str()]
                };
                for v in wanted.into_iter().filter(|v| !v.contains(['.', '*'])) {
                    assert!(
                        series
                            .iter()
                            .any(|s| s.get(label).map(String::as_str) == Some(v)),
                        "{whence} matches {}{{{label}{op}\"{value}\"}}: no series has {label}=\"{v}\"",
                        sel.metric
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} selectors found");

    // The probes and the scrape path the manifests name answer on a running worker.
    let docs = manifests();
    let admin = env.worker_admin.expect("a worker runs");
    for (deployment, base) in [
        ("aic-worker", format!("http://{admin}")),
        ("aic-control-plane", env.api.clone()),
    ] {
        let pod = &kind_named(&docs, "Deployment", deployment)["spec"]["template"];
        let container = &pod["spec"]["containers"][0];
        let scraped = pod["metadata"]["annotations"]["prometheus.io/path"].as_str();
        for path in ["livenessProbe", "readinessProbe"]
            .map(|p| {
                container[p]["httpGet"]["path"]
                    .as_str()
                    .expect("probe path")
            })
            .into_iter()
            .chain(scraped)
        {
            let status = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("probe")
                .status();
            assert_eq!(status, 200, "{deployment} {path}");
        }
    }
    env.stop().await;
}

/// The image's profile-guided worker is compiled as `deploy/local/pgo.sh` compiles it: with the
/// profile, with code the training never reached kept at full optimisation, and named
/// `profile-guided` in its `--version`.
#[test]
fn the_image_builds_a_profiled_worker_as_the_script_does() {
    let dockerfile = read("container/Dockerfile");
    let script = read("local/pgo.sh");
    for flag in ["-Cprofile-use=", "-Cllvm-args=-pgso=false", "--target-dir"] {
        assert!(dockerfile.contains(flag), "the Dockerfile lacks {flag}");
        assert!(script.contains(flag), "pgo.sh lacks {flag}");
    }
    assert!(dockerfile.contains("AIC_WORKER_BUILD=profile-guided"));
    assert!(script.contains("AIC_WORKER_BUILD=\"$build\""));
    assert!(script.contains("optimised profile-guided"));
    assert!(dockerfile.contains("ARG WORKER_PROFILE="));
}

#[test]
fn alert_rules_are_well_formed() {
    let rules = yaml_docs("prometheus/aic-rules.yml");
    let mut recorded = BTreeSet::new();
    let mut alerts = 0;
    for group in rules[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty());
            match (rule["alert"].as_str(), rule["record"].as_str()) {
                (Some(name), None) => {
                    alerts += 1;
                    let severity = rule["labels"]["severity"].as_str();
                    assert!(
                        matches!(severity, Some("critical" | "warning" | "info")),
                        "{name}: severity {severity:?}"
                    );
                    for key in ["summary", "description"] {
                        assert!(
                            rule["annotations"][key].as_str().is_some(),
                            "{name}: no {key}"
                        );
                    }
                    // A recording rule an alert reads is defined above it.
                    for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    {
                        if word.starts_with("aic:") {
                            assert!(
                                recorded.contains(word),
                                "{name} reads {word}, never recorded"
                            );
                        }
                    }
                }
                (None, Some(name)) => {
                    assert_eq!(
                        name.matches(':').count(),
                        2,
                        "level:metric:operations: {name}"
                    );
                    recorded.insert(name.to_string());
                }
                other => panic!("a rule is an alert or a record: {other:?}"),
            }
        }
    }
    assert!(alerts >= 8, "{alerts} alerts");
}
