//! Every variable a manifest sets is one the binary it is given to reads, and the ports,
//! probes, stop timings and autoscaled queue agree with what the binaries do.

use super::{kind_named, manifests, read};
use aic_proto::topology::Names;
use aic_tests::harness::binary;
use std::collections::{BTreeMap, BTreeSet};
use yaml_rust2::Yaml;

/// The `[env: NAME=…]` variables a binary's `--help` lists.
fn variables_read_by(args: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(binary(args[0]))
        .args(&args[1..])
        .arg("--help")
        .output()
        .expect("--help runs");
    assert!(out.status.success(), "{args:?} --help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    help.split("[env: ")
        .skip(1)
        .map(|s| s.split(['=', ']']).next().expect("name").to_string())
        .collect()
}

/// Variables read by libraries rather than by the binaries' flags.
const LIBRARY_VARIABLES: [&str; 4] = [
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// A container in its manifest: the file, the document, its pod and itself, and its args.
struct Container<'a> {
    file: &'a str,
    doc: &'a Yaml,
    pod: &'a Yaml,
    c: &'a Yaml,
    args: Vec<&'a str>,
}

#[test]
fn manifests_set_only_variables_their_binary_reads_and_agree_with_it() {
    let docs = manifests();
    let config_maps: BTreeMap<&str, &Yaml> = docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("ConfigMap"))
        .map(|(_, d)| (d["metadata"]["name"].as_str().expect("name"), &d["data"]))
        .collect();
    let mut containers = 0;
    for (file, doc) in &docs {
        let pod = match doc["kind"].as_str() {
            Some("Deployment") | Some("Job") => &doc["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in pod["containers"].as_vec().expect("containers") {
            containers += 1;
            let args: Vec<&str> = c["args"]
                .as_vec()
                .expect("args name the binary")
                .iter()
                .map(|a| a.as_str().expect("string arg"))
                .collect();
            let it = Container {
                file,
                doc,
                pod,
                c,
                args,
            };
            let set = variables_set(&it, &config_maps);
            listens_as_declared(&it, &set);
            stops_within_the_pods_grace(&it, &set);
            if it.args[0] == "aic-worker" {
                let namespace = &set["AIC_AMQP_NAMESPACE"];
                let scaled = kind_named(&docs, "ScaledObject", "aic-worker");
                assert_eq!(
                    scaled["spec"]["scaleTargetRef"]["name"].as_str(),
                    Some("aic-worker")
                );
                assert_eq!(
                    scaled["spec"]["triggers"][0]["metadata"]["queueName"].as_str(),
                    Some(Names::new(namespace).executions_queue.as_str()),
                    "the autoscaler watches the queue the workers consume"
                );
            }
        }
    }
    assert_eq!(containers, 3, "control plane, worker, migrations");

    // The image ships the binaries the manifests run.
    let dockerfile = read("container/Dockerfile");
    for bin in ["aic-control-plane", "aic-worker"] {
        assert!(
            dockerfile.contains(&format!("target/release/{bin}")),
            "the image does not build {bin}"
        );
        binary(bin);
    }
}

/// The variables a container is given (its ConfigMaps', then its own), each one its binary
/// reads, the database's among them.
fn variables_set(it: &Container, config_maps: &BTreeMap<&str, &Yaml>) -> BTreeMap<String, String> {
    let (file, args) = (it.file, &it.args);
    let reads = variables_read_by(args);
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for from in it.c["envFrom"].as_vec().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().expect("configMapRef");
        let data = config_maps
            .get(name)
            .unwrap_or_else(|| panic!("{file}: no ConfigMap {name}"));
        for (k, v) in data.as_hash().expect("data") {
            let value = v
                .as_str()
                .unwrap_or_else(|| panic!("ConfigMap {name}: {k:?} must be a string"));
            set.insert(k.as_str().expect("key").into(), value.into());
        }
    }
    for e in it.c["env"].as_vec().into_iter().flatten() {
        set.insert(
            e["name"].as_str().expect("env name").into(),
            e["value"].as_str().unwrap_or("").into(),
        );
    }
    for name in set.keys() {
        assert!(
            reads.contains(name) || LIBRARY_VARIABLES.contains(&name.as_str()),
            "{file}: {args:?} is given {name}, which it does not read (it reads {reads:?})"
        );
    }
    assert!(
        set.contains_key("AIC_DATABASE_URL"),
        "{file}: {args:?} lacks AIC_DATABASE_URL"
    );
    set
}

/// A listening service listens on all interfaces, on the port the pod declares and is scraped
/// on, and is given the broker and the credential keys.
fn listens_as_declared(it: &Container, set: &BTreeMap<String, String>) {
    let (file, args) = (it.file, &it.args);
    let var = match args[0] {
        "aic-worker" => "AIC_WORKER_ADMIN_LISTEN",
        _ if args.get(1) == Some(&"serve") => "AIC_LISTEN",
        _ => return,
    };
    let addr: std::net::SocketAddr = set[var].parse().expect("address");
    assert!(addr.ip().is_unspecified(), "{file}: {var}={addr}");
    let ports: Vec<i64> = it.c["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_i64())
        .collect();
    assert_eq!(
        ports,
        vec![i64::from(addr.port())],
        "{file}: ports vs {var}"
    );
    let scrape_port = it.doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        .as_str()
        .map(|p| p.parse::<u16>().expect("port"));
    assert_eq!(
        scrape_port,
        Some(addr.port()),
        "{file}: scraped port vs {var}"
    );
    for key in ["AIC_AMQP_URL", "AIC_CREDENTIAL_KEYS"] {
        assert!(set.contains_key(key), "{file}: {args:?} lacks {key}");
    }
}

/// The pod is killed past its termination grace: after the control plane's pause while its
/// endpoints go and its shutdown grace, and after the worker's grace and its last publishes.
fn stops_within_the_pods_grace(it: &Container, set: &BTreeMap<String, String>) {
    let file = it.file;
    let secs = |var: &str| -> i64 { set[var].parse().expect("secs") };
    let pod_grace = || {
        it.pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace")
    };
    if it.args.get(1) == Some(&"serve") {
        let grace = secs("AIC_SHUTDOWN_GRACE_SECS");
        let pause: i64 = match it.c["lifecycle"]["preStop"]["exec"]["command"].as_vec() {
            Some(cmd) if cmd[0].as_str() == Some("sleep") => {
                cmd[1].as_str().expect("seconds").parse().expect("secs")
            }
            _ => 0,
        };
        let pod_grace = pod_grace();
        assert!(
            pause > 0 && pod_grace >= pause + grace + 5,
            "{file}: the pod is killed {pod_grace} s after its stop, before its pause ({pause} s) while the endpoints go, its {grace} s grace and its closing"
        );
    }
    if it.args[0] == "aic-worker" {
        let grace = secs("AIC_WORKER_SHUTDOWN_GRACE_SECS");
        let pod_grace = pod_grace();
        assert!(
            pod_grace >= grace + 5,
            "{file}: the pod is killed {pod_grace} s after SIGTERM, before the worker's {grace} s grace and its last publishes"
        );
    }
}
