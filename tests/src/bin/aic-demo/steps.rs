//! The demo's steps, as an admin and a flow would take them: a tenant, a tested connection, a
//! published automation, a batch enqueued through RabbitMQ, its results and the worker's
//! metrics.

use crate::{Args, procs, step};
use aic_proto::topology::{EXECUTE_ROUTING_KEY, EXECUTION_REQUEST_TYPE, Names};
use aic_proto::{AutomationId, ExecutionId, ExecutionRequestV1, TenantId};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The running system, as the steps reach it.
pub struct System<'a> {
    pub args: &'a Args,
    /// The binaries' environment (database, broker, keys).
    pub env: &'a [(&'a str, String)],
    pub bin_dir: &'a Path,
    /// Where the processes' logs go (and the console's token, when the demo keeps running).
    pub logs: &'a Path,
    pub http: reqwest::Client,
    /// The control plane's base URL.
    pub api: String,
    pub sandbox_url: String,
    pub metrics_url: String,
    pub namespace: String,
    /// The Salesforce client the sandbox was started with: its id and secret.
    pub salesforce: (String, String),
}

/// The control plane's API, as the tenant's admin.
struct Api<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: String,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{status}: {body}");
        Ok(body)
    }
}

/// The executions enqueued: each one's last name and company, by execution id.
type Sent = HashMap<String, (&'static str, &'static str)>;

/// Takes every step; says whether the results are what they should be.
pub async fn drive(sys: &System<'_>) -> anyhow::Result<bool> {
    let (tenant, api) = create_tenant(sys).await?;
    let connection = connect_salesforce(sys, &api).await?;
    let automation = create_automation(&api, &connection).await?;

    step(&format!(
        "Enqueuing {} executions through RabbitMQ (exchange {}.executions, routing key execute)",
        sys.args.batch, sys.namespace
    ));
    let conn =
        aic_core::amqp::connect(&SecretString::from(sys.args.amqp_url.clone()), "aic-demo").await?;
    let ch = aic_core::amqp::confirm_channel(&conn).await?;
    let (reply_queue, mut consumer) = aic_core::amqp::private_queue(&ch).await?;
    let sent = enqueue(sys, &ch, &reply_queue, tenant, automation).await?;
    println!(
        "  {} requests confirmed by the broker; results come back on reply queue {reply_queue}",
        sent.len()
    );

    step("Results");
    let (ok, expected_failure, other) = results(&sent, &mut consumer).await?;
    show_metrics(sys).await?;
    let good = ok == sent.len() - 1 && expected_failure == 1 && other == 0;
    println!(
        "\n{} {ok} leads created, {expected_failure} refused by Salesforce with REQUIRED_FIELD_MISSING, {other} unexpected",
        if good { "✔" } else { "✘" }
    );
    let _ = conn.close(200, "done".into()).await;
    if !sys.args.exit {
        console_token(sys, &api).await?;
    }
    Ok(good)
}

/// A day's admin token for the console, written to a file only its owner reads (never printed).
async fn console_token(sys: &System<'_>, api: &Api<'_>) -> anyhow::Result<()> {
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    let issued = api
        .call(
            reqwest::Method::POST,
            "/v1/tokens",
            Some(
                serde_json::json!({"name": "demo console", "role": "admin", "expires_at": expires}),
            ),
        )
        .await?;
    let file = sys.logs.join("console-token");
    let token = issued["token"].as_str().unwrap_or_default();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)?;
        writeln!(f, "{token}")?;
    }
    println!(
        "
Admin console: {}/console — sign in with the token in {} (valid one day)",
        sys.api,
        file.display()
    );
    Ok(())
}

/// The tenant `demo` and its admin token, issued by the control plane's command line.
async fn create_tenant<'s>(sys: &'s System<'_>) -> anyhow::Result<(TenantId, Api<'s>)> {
    step("Creating tenant `demo` and its admin token");
    let issued: Value = serde_json::from_str(
        procs::run(
            sys.bin_dir,
            "aic-control-plane",
            &["create-tenant", "--name", "demo"],
            sys.env,
        )
        .await?
        .trim(),
    )?;
    let tenant: TenantId = issued["tenant_id"].as_str().unwrap_or_default().parse()?;
    println!("  tenant {tenant}, admin token aic_… (shown once, kept by the demo)");
    let api = Api {
        http: &sys.http,
        base: &sys.api,
        token: issued["token"].as_str().unwrap_or_default().to_string(),
    };
    Ok((tenant, api))
}

/// A Salesforce connection, tested before and after it is saved; its id.
async fn connect_salesforce(sys: &System<'_>, api: &Api<'_>) -> anyhow::Result<String> {
    step("Salesforce connection (OAuth 2.0 client credentials, against the sandbox)");
    let (client_id, client_secret) = &sys.salesforce;
    let connection = json!({"name": "Salesforce (sandbox)", "app": "salesforce", "domain": sys.sandbox_url,
        "auth_type": "oauth2_client_credentials", "secrets": {"client_id": client_id, "client_secret": client_secret}});
    let post = reqwest::Method::POST;
    let test = api
        .call(
            post.clone(),
            "/v1/connection-tests",
            Some(connection.clone()),
        )
        .await?;
    println!(
        "  test before saving: ok={} — {}",
        test["ok"],
        test["message"].as_str().unwrap_or("")
    );
    let saved = api
        .call(post.clone(), "/v1/connections", Some(connection))
        .await?;
    let id = saved["id"].as_str().unwrap_or_default().to_string();
    let tested = api
        .call(post, &format!("/v1/connections/{id}/test"), None)
        .await?;
    println!(
        "  saved as {id}; status after test: {}",
        tested["status"].as_str().unwrap_or("")
    );
    Ok(id)
}

/// "Create Lead" from its template with a mapped parameter table, published; its id.
async fn create_automation(api: &Api<'_>, connection: &str) -> anyhow::Result<AutomationId> {
    step(
        "Automation “Create Lead” from template salesforce.create_lead, parameters mapped, published",
    );
    let parameters = json!([
        {"name": "last_name", "type": "string", "target": "LastName", "required": true, "description": "Lead's last name", "max_length": 80},
        {"name": "company", "type": "string", "target": "Company", "required": true, "description": "Lead's company", "max_length": 255},
        {"name": "email", "type": "email", "target": "Email", "required": true, "description": "Work e-mail"},
        {"name": "title", "type": "string", "target": "Title", "required": false, "description": "Job title"},
        {"name": "employees", "type": "integer", "target": "NumberOfEmployees", "required": false, "description": "Head count", "minimum": 0, "maximum": 99999999}
    ]);
    let automation = api.call(reqwest::Method::POST, "/v1/automations", Some(json!({"template": "salesforce.create_lead", "connection_id": connection,
        "name": "Create Lead", "description": "Creates a Salesforce lead from the onboarding flow", "parameters": parameters}))).await?;
    let id: AutomationId = automation["id"].as_str().unwrap_or_default().parse()?;
    for p in automation["parameters"].as_array().into_iter().flatten() {
        let required = if p["required"] == true {
            "required"
        } else {
            "optional"
        };
        println!(
            "  {:<10} {:<8} → {:<18} {required}",
            p["name"].as_str().unwrap_or(""),
            p["type"].as_str().unwrap_or(""),
            p["target"].as_str().unwrap_or(""),
        );
    }
    let version = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/automations/{id}/publish"),
            Some(json!({"version_name": "First release"})),
        )
        .await?;
    println!(
        "  published version {} (“{}”)",
        version["number"],
        version["name"].as_str().unwrap_or("")
    );
    Ok(id)
}

/// Publishes the batch as an outside client would, each request confirmed, its result asked
/// on `reply_queue`. The last one leaves Company blank, as a careless form would: Salesforce
/// refuses it.
async fn enqueue(
    sys: &System<'_>,
    ch: &lapin::Channel,
    reply_queue: &str,
    tenant: TenantId,
    automation: AutomationId,
) -> anyhow::Result<Sent> {
    const PEOPLE: [(&str, &str, &str); 6] = [
        ("Lovelace", "Analytical Engines Ltd", "ada@engines.example"),
        ("Hopper", "Compilers Inc", "grace@compilers.example"),
        ("Turing", "Bletchley Systems", "alan@bletchley.example"),
        ("Hamilton", "Apollo Software", "margaret@apollo.example"),
        ("Liskov", "Substitution Labs", "barbara@labs.example"),
        ("Knuth", "Literate Programs", "don@tex.example"),
    ];
    let names = Names::new(&sys.namespace);
    let batch = sys.args.batch.max(2);
    let mut sent = HashMap::new();
    for i in 0..batch {
        let (last, company, email) = PEOPLE[i % PEOPLE.len()];
        let company = if i + 1 == batch { "" } else { company };
        let mut params = Map::new();
        params.insert("last_name".into(), json!(last));
        params.insert("company".into(), json!(company));
        params.insert("email".into(), json!(email));
        params.insert("employees".into(), json!(10 * (i + 1)));
        let req = ExecutionRequestV1 {
            version: 1,
            execution_id: ExecutionId::new(),
            tenant_id: tenant,
            automation_id: automation,
            parameters: params,
            requested_at: Some(chrono::Utc::now()),
            source: Some("flow:demo".into()),
        };
        let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
            .with_reply_to(reply_queue.into())
            .with_correlation_id(req.execution_id.to_string().into());
        aic_core::amqp::publish_confirmed(
            ch,
            &names.executions_exchange,
            EXECUTE_ROUTING_KEY,
            &serde_json::to_vec(&req)?,
            props,
            true,
        )
        .await?;
        sent.insert(req.execution_id.to_string(), (last, company));
    }
    Ok(sent)
}

/// Prints each result as it arrives (60 s at most for all); counts the leads created, the
/// refusals expected of the blank Company, and anything else.
async fn results(
    sent: &Sent,
    consumer: &mut lapin::Consumer,
) -> anyhow::Result<(usize, usize, usize)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ok, mut expected_failure, mut other) = (0, 0, 0);
    for received in 0..sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(d))) = tokio::time::timeout(left, consumer.next()).await else {
            anyhow::bail!(
                "only {received} of {} results arrived within 60 s",
                sent.len()
            );
        };
        let r: Value = serde_json::from_slice(&d.data)?;
        let id = r["execution_id"].as_str().unwrap_or("");
        let (last, company) = sent.get(id).copied().unwrap_or(("?", "?"));
        if r["status"] == "succeeded" {
            ok += 1;
            println!(
                "  ✔ {last:<9} {company:<24} lead {}",
                r["output"]["id"].as_str().unwrap_or("?")
            );
            continue;
        }
        let v = &r["error"]["vendor"];
        if v["code"] == "REQUIRED_FIELD_MISSING" {
            expected_failure += 1
        } else {
            other += 1
        }
        println!(
            "  ✘ {last:<9} {:<24} {}: {} {} (fields {})",
            format!("{company:?}"),
            r["error"]["code"].as_str().unwrap_or(""),
            v["code"].as_str().unwrap_or(""),
            v["message"]
                .as_str()
                .unwrap_or(r["error"]["message"].as_str().unwrap_or("")),
            v["fields"]
        );
    }
    Ok((ok, expected_failure, other))
}

/// The worker's execution and vendor-call counts, from its `/metrics`.
async fn show_metrics(sys: &System<'_>) -> anyhow::Result<()> {
    let metrics = sys.http.get(&sys.metrics_url).send().await?.text().await?;
    step(&format!("Worker metrics: {}", sys.metrics_url));
    for line in metrics.lines().filter(|l| {
        l.starts_with("aic_executions_total")
            || l.starts_with("aic_vendor_requests_total")
            || l.starts_with("aic_execution_duration_seconds_count")
    }) {
        println!("  {line}");
    }
    Ok(())
}
