//! What the tests run on, set up through the API: tokens of each role, connections to the
//! sandbox's vendors, and published automations on them.

use super::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

impl TestEnv {
    /// A token of another role for this tenant.
    pub async fn token(&self, role: aic_control_plane::auth::Role) -> String {
        self.issued(role, "test").await.token
    }

    /// A token of `role` named `name` for this tenant, with its id.
    pub async fn issued(
        &self,
        role: aic_control_plane::auth::Role,
        name: &str,
    ) -> aic_control_plane::tenants::IssuedToken {
        aic_control_plane::tenants::issue(&self.pool, self.tenant, role, name)
            .await
            .expect("token")
    }

    /// Revokes the token `id` through the API, as an admin.
    pub async fn revoke(&self, id: uuid::Uuid) {
        let path = format!("/v1/tokens/{id}");
        let (status, body) = self.call(Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    /// Registers a connected app in the sandbox and creates a connection to it.
    pub async fn salesforce_connection(
        &self,
        name: &str,
        secret_in_sandbox: &str,
        secret_given: &str,
    ) -> Value {
        let client_id = format!("3MVG9{}", uuid::Uuid::new_v4().simple());
        self.sandbox
            .state
            .salesforce
            .add_client(&client_id, secret_in_sandbox);
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/connections",
                Some(json!({
                    "name": name, "app": "salesforce", "domain": self.sandbox.url(),
                    "auth_type": "oauth2_client_credentials",
                    "secrets": {"client_id": client_id, "client_secret": secret_given}
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a connection to the sandbox for any app; returns the connection.
    pub async fn connection(
        &self,
        name: &str,
        app: &str,
        auth_type: &str,
        secrets: Value,
    ) -> Value {
        let (status, body) = self
            .call(Method::POST, "/v1/connections", Some(json!({"name": name, "app": app, "domain": self.sandbox.url(), "auth_type": auth_type, "secrets": secrets})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates and publishes an automation from a template; returns its id.
    pub async fn published_automation(
        &self,
        template: &str,
        connection_id: &str,
        name: &str,
        parameters: Option<Value>,
    ) -> String {
        let mut body = json!({"template": template, "connection_id": connection_id, "name": name});
        if let Some(p) = parameters {
            body["parameters"] = p;
        }
        self.automation(body).await
    }

    /// Another published Create Lead, named `name`, on the connection of the automation
    /// `lead`; returns its id.
    pub async fn lead_beside(&self, lead: &str, name: &str) -> String {
        let path = format!("/v1/automations/{lead}");
        let (status, read) = self.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        let connection = read["connection_id"].as_str().expect("a connection");
        self.published_automation("salesforce.create_lead", connection, name, None)
            .await
    }

    /// Creates an automation from a full `POST /v1/automations` body and publishes it; returns
    /// its id.
    pub async fn automation(&self, body: Value) -> String {
        let (status, created) = self.call(Method::POST, "/v1/automations", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().expect("id").to_string();
        let (status, version) = self
            .call(Method::POST, &format!("/v1/automations/{id}/publish"), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{version}");
        id
    }

    /// A Slack connection with bot token `token` and a published Send Message on it; returns
    /// the automation's id.
    pub async fn slack_automation(&self, name: &str, token: &str) -> String {
        self.sandbox.state.slack.add_token(token);
        let conn = self
            .connection(name, "slack", "bot_token", json!({"bot_token": token}))
            .await;
        self.published_automation(
            "slack.send_message",
            conn["id"].as_str().expect("id"),
            name,
            None,
        )
        .await
    }

    /// A Jira connection by e-mail and API token (`bot@acme.example` and `token`, that user
    /// added to the sandbox's site first); returns the connection's id.
    pub async fn jira_connection(&self, token: &str) -> String {
        self.sandbox.state.jira.add_user("bot@acme.example", token);
        let conn = self
            .connection(
                "Jira",
                "jira",
                "basic",
                json!({"email": "bot@acme.example", "api_token": token}),
            )
            .await;
        conn["id"].as_str().expect("id").to_string()
    }

    /// A ServiceNow connection by OAuth's password grant (its user and client added to the
    /// sandbox's instance); returns the connection's id.
    pub async fn servicenow_oauth_connection(&self) -> String {
        let instance = &self.sandbox.state.servicenow;
        instance.add_user("aic.integration", "sn-password");
        instance.add_client("sn-client", "sn-client-secret");
        let conn = self
            .connection(
                "SN oauth",
                "servicenow",
                "oauth2_password",
                json!({"client_id": "sn-client", "client_secret": "sn-client-secret", "username": "aic.integration", "password": "sn-password"}),
            )
            .await;
        conn["id"].as_str().expect("id").to_string()
    }

    /// A ServiceNow connection (Basic, a user added to the sandbox's instance) with a published
    /// Create Incident automation; returns the automation's id.
    pub async fn incident_automation(&self) -> String {
        self.sandbox.state.servicenow.add_user("u", "p");
        let conn = self
            .connection(
                "SN",
                "servicenow",
                "basic",
                json!({"username": "u", "password": "p"}),
            )
            .await;
        self.published_automation(
            "servicenow.create_incident",
            conn["id"].as_str().expect("id"),
            "Incident",
            None,
        )
        .await
    }

    /// A Salesforce connection (right secret) with a published Create Lead automation.
    pub async fn lead_automation(&self) -> String {
        let conn = self
            .salesforce_connection("Sales org", "s3cret-value", "s3cret-value")
            .await;
        self.published_automation(
            "salesforce.create_lead",
            conn["id"].as_str().expect("id"),
            "Create lead",
            None,
        )
        .await
    }

    /// A published Create Lead automation whose creates upsert on the external id field
    /// `AIC_Execution_Id__c` (keyed by the execution id); its id.
    pub async fn upserting_lead_automation(&self) -> String {
        let conn = self.salesforce_connection("Org", "s3cret", "s3cret").await;
        self.automation(
            json!({"template": "salesforce.create_lead", "name": "Upserted lead",
            "connection_id": conn["id"], "external_id_field": "AIC_Execution_Id__c"}),
        )
        .await
    }
}
