//! A name is unique as a reader sees it: two connections or automations whose names differ
//! only in case, spacing, character widths, how an accent is encoded or an invisible character
//! are one name to a bot's step picker, the console's tiles and the audit trail.

use aic_tests::harness::{Options, ScratchDatabase, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

/// The 409's message, checked to name the one `given` clashed with.
fn clashed_with(given: &str, (status, err): (reqwest::StatusCode, Value), existing: &str) {
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("name_taken")),
        "{given:?}: {err}"
    );
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("named '{existing}' already exists")),
        "{given:?}: {message}"
    );
}

#[tokio::test]
async fn names_that_read_the_same_are_one_name() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let (_, read) = env
        .call(Method::GET, &format!("/v1/automations/{lead}"), None)
        .await;
    let (existing, connection) = (
        read["name"].as_str().expect("name").to_string(),
        read["connection_id"]
            .as_str()
            .expect("connection")
            .to_string(),
    );
    let shouted = existing.to_uppercase();
    let wide: String = existing
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xfee0).unwrap_or(c),
            c => c,
        })
        .collect();
    let spaced = existing.replace(' ', "\u{a0}\u{a0}");
    let hidden = format!("{existing}\u{200b}");
    for given in [&shouted, &wide, &spaced, &hidden] {
        let body = json!({"template": "salesforce.create_lead", "connection_id": connection, "name": given});
        let answer = env.call(Method::POST, "/v1/automations", Some(body)).await;
        clashed_with(given, answer, &existing);
    }
    // An accent written as a combining mark and as one character.
    let composed = env.lead_beside(&lead, "Caf\u{e9} leads").await;
    let decomposed = "Cafe\u{301} leads";
    let duplicate = format!("/v1/automations/{lead}/duplicate");
    let answer = env
        .call(Method::POST, &duplicate, Some(json!({"name": decomposed})))
        .await;
    clashed_with(decomposed, answer, "Caf\u{e9} leads");
    // A rename into another's name is refused naming it; one's own name in another case is
    // that one's to take.
    let rename = |id: &str| format!("/v1/automations/{id}");
    let answer = env
        .call(
            Method::PATCH,
            &rename(&composed),
            Some(json!({"name": shouted})),
        )
        .await;
    clashed_with(&shouted, answer, &existing);
    let (status, renamed) = env
        .call(
            Method::PATCH,
            &rename(&lead),
            Some(json!({"name": shouted})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), renamed["name"].as_str()),
        (200, Some(shouted.as_str())),
        "{renamed}"
    );
    // A copy's default name passes over a look-alike of its first choice.
    let lower_copy = format!("{} (COPY)", existing.to_lowercase());
    let (status, _) = env
        .call(Method::POST, &duplicate, Some(json!({"name": lower_copy})))
        .await;
    assert_eq!(status.as_u16(), 201);
    let (status, copy) = env.call(Method::POST, &duplicate, None).await;
    assert_eq!(
        (status.as_u16(), copy["name"].as_str()),
        (201, Some(format!("{shouted} (copy 2)").as_str())),
        "{copy}"
    );
    // Connections alike.
    let (_, conn) = env
        .call(Method::GET, &format!("/v1/connections/{connection}"), None)
        .await;
    let conn_name = conn["name"].as_str().expect("name").to_string();
    let other = env.salesforce_connection("Other org", "s", "s").await;
    let other = other["id"].as_str().expect("id");
    let given = conn_name.to_lowercase().replace(' ', "\u{3000}");
    let answer = env
        .call(
            Method::PATCH,
            &format!("/v1/connections/{other}"),
            Some(json!({"name": given})),
        )
        .await;
    clashed_with(&given, answer, &conn_name);
    let created = json!({"name": given, "app": "slack", "domain": env.sandbox.url(),
        "auth_type": "bot_token", "secrets": {"bot_token": "xoxb-1-2-abc"}});
    let answer = env
        .call(Method::POST, "/v1/connections", Some(created))
        .await;
    clashed_with(&given, answer, &conn_name);
    // Tenants, named by operators.
    let refused = aic_control_plane::tenants::create_tenant(&env.pool, "ACME\u{fe0f}")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("a tenant named 'acme' already exists")),
        "{refused:?}"
    );
    env.stop().await;
}

/// Names saved before uniqueness read them as a reader does keep the oldest as it was; each
/// later look-alike is renamed (the end of its id added), in its tenant's audit trail.
#[tokio::test]
async fn an_upgrade_renames_look_alikes_saved_before_and_says_so() {
    let db = ScratchDatabase::migrated_to(23).await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'one'), \
                 ('00000000-0000-0000-0000-000000000002', 'two'); \
             INSERT INTO connections (id, tenant_id, name, app, domain, auth_type, secret_key_id, \
                 secret_nonce, secret_ciphertext, created_at) VALUES \
               ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000001', 'Org', 'salesforce', 'https://x', 'a', 'k', '\\x00', '\\x00', now() - interval '2 days'), \
               ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-000000000001', 'ORG', 'salesforce', 'https://x', 'a', 'k', '\\x00', '\\x00', now() - interval '1 day'), \
               ('00000000-0000-0000-0000-0000000000c3', '00000000-0000-0000-0000-000000000002', 'org', 'salesforce', 'https://x', 'a', 'k', '\\x00', '\\x00', now()); \
             INSERT INTO automations (id, tenant_id, connection_id, app, action, name, parameters, created_at) VALUES \
               ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000c1', 'salesforce', 'create_lead', 'Caf\u{e9}', '[]', now() - interval '3 days'), \
               ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000c1', 'salesforce', 'create_lead', 'Cafe\u{301}', '[]', now() - interval '2 days'), \
               ('00000000-0000-0000-0000-0000000000a3', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000c1', 'salesforce', 'create_lead', 'CAF\u{c9}', '[]', now() - interval '1 day'), \
               ('00000000-0000-0000-0000-0000000000a4', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000c1', 'salesforce', 'create_lead', 'Lead', '[]', now());",
        )
        .await
        .expect("rows as an earlier release wrote them");
    aic_control_plane::migrate::run(&db.url)
        .await
        .expect("the upgrade applies");
    let names = |table: &'static str| {
        let client = &client;
        async move {
            let rows = client
                .query(&format!("SELECT name FROM {table} ORDER BY id"), &[])
                .await
                .expect(table);
            rows.iter().map(|r| r.get(0)).collect::<Vec<String>>()
        }
    };
    assert_eq!(names("connections").await, ["Org", "ORG (000000c2)", "org"]);
    assert_eq!(
        names("automations").await,
        [
            "Caf\u{e9}",
            "Cafe\u{301} (000000a2)",
            "CAF\u{c9} (000000a3)",
            "Lead"
        ]
    );
    let events = client
        .query(
            "SELECT tenant_id::text, action, target_name, actor_name, detail->>'previous_name' \
             FROM audit_events ORDER BY target_id",
            &[],
        )
        .await
        .expect("audit");
    let events: Vec<[String; 5]> = events
        .iter()
        .map(|r| [0, 1, 2, 3, 4].map(|i| r.get(i)))
        .collect();
    let one = "00000000-0000-0000-0000-000000000001";
    assert_eq!(
        events,
        [
            [
                one,
                "automation.updated",
                "Cafe\u{301} (000000a2)",
                "upgrade (V24)",
                "Cafe\u{301}"
            ],
            [
                one,
                "automation.updated",
                "CAF\u{c9} (000000a3)",
                "upgrade (V24)",
                "CAF\u{c9}"
            ],
            [
                one,
                "connection.updated",
                "ORG (000000c2)",
                "upgrade (V24)",
                "ORG"
            ],
        ]
        .map(|e| e.map(String::from))
    );
    // From now on the database itself refuses a look-alike, whichever way it is written.
    let refused = client
        .execute(
            "INSERT INTO automations (id, tenant_id, connection_id, app, action, name, parameters) \
             VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', \
             '00000000-0000-0000-0000-0000000000c1', 'salesforce', 'create_lead', ' lead\u{200d} ', '[]')",
            &[],
        )
        .await
        .expect_err("a look-alike of 'Lead'");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{refused}"
    );
}
