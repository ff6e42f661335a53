//! The document's shape, checked.

use serde_json::json;

#[test]
fn every_reference_in_the_document_resolves() {
    let doc = super::document();
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components");
    for (i, _) in text.match_indices("#/components/schemas/") {
        let name: String = text[i + 21..].chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "dangling $ref to {name}");
    }
    assert!(doc["paths"]["/v1/automations/{id}/executions"]["post"]["requestBody"].is_object());
    let restore = &doc["paths"]["/v1/automations/{id}/versions/{number}/restore"]["post"];
    assert_eq!(
        restore["parameters"][1]["schema"]["type"], "integer",
        "{restore}"
    );
    let delete = &doc["paths"]["/v1/automations/{id}"]["delete"]["responses"]["204"];
    assert!(delete.get("content").is_none(), "{delete}");
    let audit = &doc["paths"]["/v1/audit-events"]["get"];
    assert_eq!(
        audit["parameters"].as_array().map(Vec::len),
        Some(6),
        "{audit}"
    );
    assert_eq!(audit["description"], "Roles: admin.");
    assert!(doc["paths"]["/v1/tokens/{id}"]["delete"].is_object());
    // What each parameter and field takes, as the handlers check it.
    let param = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_default()
    };
    let actions = param("/v1/audit-events", "action")["enum"].to_string();
    assert!(
        actions.contains("\"automation.execution_rerun\""),
        "{actions}"
    );
    assert_eq!(
        param("/v1/executions", "limit"),
        json!({"type": "integer", "minimum": 1, "maximum": 200})
    );
    assert_eq!(param("/v1/executions", "since")["format"], "date-time");
    assert!(
        param("/v1/apps", "domain")["enum"]
            .to_string()
            .contains("\"sales\"")
    );
    let schemas = &doc["components"]["schemas"];
    let apps = schemas["ConnectionInput"]["properties"]["app"]["enum"].to_string();
    assert!(apps.contains("\"salesforce\""), "{apps}");
    let templates = schemas["CreateAutomation"]["properties"]["template"]["enum"].to_string();
    assert!(
        templates.contains("\"salesforce.create_lead\""),
        "{templates}"
    );
    assert_eq!(
        schemas["IssueToken"]["properties"]["role"]["enum"],
        json!(["admin", "editor", "viewer", "service"])
    );
    assert_eq!(
        schemas["IssueToken"]["properties"]["name"]["maxLength"],
        200
    );
    let auth = schemas["UpdateConnection"]["properties"]["auth_type"]["enum"].to_string();
    assert!(
        auth.contains("\"oauth2_client_credentials\"") && auth.contains("null"),
        "{auth}"
    );
    let numbers = &schemas["DeleteVersions"]["properties"]["numbers"];
    assert_eq!(
        (&numbers["minItems"], &numbers["maxItems"]),
        (&json!(1), &json!(1000))
    );
    // A record's creation links to the operations on it, a publish to its version's.
    let made = &doc["paths"]["/v1/automations"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        made["publishAutomation"]["parameters"]["id"],
        "$response.body#/id"
    );
    assert!(made.get("restoreVersion").is_none(), "{made}");
    let published =
        &doc["paths"]["/v1/automations/{id}/publish"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        published["restoreVersion"]["parameters"]["number"],
        "$response.body#/number"
    );
    for status in ["200", "202"] {
        for path in [
            "/v1/automations/{id}/executions",
            "/v1/executions/{id}/rerun",
        ] {
            let enqueued = &doc["paths"][path]["post"]["responses"][status]["links"];
            assert!(
                enqueued["rerunExecution"].is_object(),
                "{path} {status}: {enqueued}"
            );
        }
    }
    // A field the answer leaves out when empty is not required of it.
    let field = &schemas["ObjectField"]["required"];
    assert!(!field.to_string().contains("\"values\""), "{field}");
    let publish = &doc["paths"]["/v1/automations/{id}/publish"]["post"]["requestBody"];
    assert_eq!(publish["required"], false, "{publish}");
    for (method, path) in [
        ("post", "/v1/connections/{id}/test"),
        ("post", "/v1/automations/{id}/test"),
        ("get", "/v1/automations/{id}/fields"),
    ] {
        let held = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            held["headers"]["Retry-After"].is_object(),
            "{method} {path}"
        );
    }
    // An automation and a connection answer their ETag; their changes take If-Match, and say
    // what a 412 means.
    for (method, path, status) in [
        ("get", "/v1/automations/{id}", "200"),
        ("patch", "/v1/automations/{id}", "200"),
        ("post", "/v1/automations", "201"),
        ("post", "/v1/automations/{id}/duplicate", "201"),
        (
            "post",
            "/v1/automations/{id}/versions/{number}/restore",
            "200",
        ),
        ("get", "/v1/connections/{id}", "200"),
        ("patch", "/v1/connections/{id}", "200"),
        ("delete", "/v1/connections/{id}/cooldowns", "200"),
    ] {
        let answer = &doc["paths"][path][method]["responses"][status];
        assert!(answer["headers"]["ETag"].is_object(), "{method} {path}");
    }
    for (method, path) in [
        ("patch", "/v1/automations/{id}"),
        ("delete", "/v1/automations/{id}"),
        ("post", "/v1/automations/{id}/publish"),
        ("post", "/v1/automations/{id}/versions/{number}/restore"),
        ("patch", "/v1/connections/{id}"),
        ("delete", "/v1/connections/{id}"),
    ] {
        let op = &doc["paths"][path][method];
        let header = op["parameters"].as_array().and_then(|ps| ps.last());
        assert_eq!(
            header.map(|p| (&p["name"], &p["in"])),
            Some((&json!("If-Match"), &json!("header"))),
            "{method} {path}"
        );
        assert!(
            op["responses"]["412"]["content"].is_object(),
            "{method} {path}"
        );
    }
    let list = &doc["paths"]["/v1/automations"]["get"]["responses"]["200"];
    assert!(list.get("headers").is_none(), "{list}");
}
