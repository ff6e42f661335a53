//! The admin console as the control plane serves it: the page and its scripts with a content
//! security policy that lets them load nothing but themselves, scripts that parse, and every
//! API path they call one the OpenAPI document describes — so that an endpoint renamed without
//! the console breaks here, not in an admin's browser.

use aic_control_plane::console::{CONTENT_SECURITY_POLICY, FILES};
use aic_tests::harness::{Options, TestEnv};
use std::collections::BTreeSet;

/// `{id}`, `{number}`… all written `{}`, so that the console's paths and the document's compare.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.trim_end_matches('/').chars() {
        match c {
            '{' => {
                inside = true;
                out.push('{');
            }
            '}' => {
                inside = false;
                out.push('}');
            }
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// The `/v1/…` paths a script names, up to the first character a path cannot hold.
fn api_paths(script: &str) -> BTreeSet<String> {
    script
        .match_indices("/v1/")
        .map(|(i, _)| {
            script[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/_-{}".contains(*c))
                .collect::<String>()
        })
        .map(|p| shape(&p))
        .collect()
}

#[tokio::test]
async fn the_console_is_served_with_a_policy_that_loads_only_itself() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/navigation.js", "text/javascript; charset=utf-8"),
        ("/console/connections.js", "text/javascript; charset=utf-8"),
        ("/console/automations.js", "text/javascript; charset=utf-8"),
        ("/console/governance.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let resp = http
            .get(format!("{}{path}", env.api))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("content-type"), kind, "{path}");
        assert_eq!(header("content-security-policy"), CONTENT_SECURITY_POLICY);
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    }
    let page = http
        .get(format!("{}/console", env.api))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    for (name, _, _) in FILES.iter().filter(|(n, _, _)| *n != "index.html") {
        assert!(
            page.contains(&format!("/console/{name}")),
            "the page loads {name}"
        );
    }
    assert!(
        !page.contains("<script>"),
        "no inline script: the policy would refuse it"
    );
    let missing = http
        .get(format!("{}/console/secrets.txt", env.api))
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), 404);
    env.stop().await;
}

#[test]
fn every_api_path_the_console_calls_is_in_the_openapi_document() {
    let doc = aic_control_plane::openapi::document();
    let described: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|p| shape(p))
        .collect();
    let mut called = BTreeSet::new();
    for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        for path in api_paths(body) {
            assert!(
                described.contains(&path),
                "{name} calls {path}, which the API does not describe"
            );
            called.insert(path);
        }
    }
    // The seed's pages and the governance ones: the console reaches each.
    for needed in [
        "/v1/me",
        "/v1/apps",
        "/v1/connection-tests",
        "/v1/connections/{}/test",
        "/v1/automations/{}/fields",
        "/v1/automations/{}/versions/delete",
        "/v1/automations/{}/executions",
        "/v1/executions",
        "/v1/tokens/{}",
        "/v1/audit-events",
        "/v1/deployables",
    ] {
        assert!(
            called.contains(needed),
            "the console never calls {needed}: {called:?}"
        );
    }
}

#[test]
fn the_scripts_parse() {
    let dir = std::env::temp_dir().join(format!("aic-console-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        let file = dir.join(name);
        std::fs::write(&file, body).expect("write");
        let out = std::process::Command::new("node")
            .arg("--check")
            .arg(&file)
            .output()
            .expect("node (Node.js) runs: it checks the console's scripts");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}
