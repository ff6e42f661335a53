//! What the pipeline rows execute (`--vendor`): one published automation of one vendor's
//! catalogue, each request's parameters, and the output its results must carry. Salesforce's
//! Create Lead by default; the others measure the worker on another connector — its
//! authentication, its request body, its answer's mapping — over the same broker and ledger,
//! against the sandbox's fast mode for that vendor.

use aic_tests::harness::TestEnv;
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;

/// The vendor whose automation the pipeline rows run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Create Lead (OAuth token, `POST …/sobjects/Lead/`).
    Salesforce,
    /// Create Incident (Basic auth, `POST /api/now/table/incident`).
    Servicenow,
    /// Create Issue (e-mail and API token, `POST /rest/api/3/issue`).
    Jira,
    /// Send Message (bot token, `POST /api/chat.postMessage`).
    Slack,
}

impl Vendor {
    /// The automation's catalogue template.
    pub fn template(self) -> &'static str {
        match self {
            Vendor::Salesforce => "salesforce.create_lead",
            Vendor::Servicenow => "servicenow.create_incident",
            Vendor::Jira => "jira.create_issue",
            Vendor::Slack => "slack.send_message",
        }
    }

    /// An output field the template maps that no other vendor's here does (a Salesforce
    /// record's `id`, a ServiceNow `number`, a Jira issue's `key`, a Slack message's `ts`): a
    /// result without it did not come from this vendor's automation.
    fn output_field<'o>(self, output: &'o Output<'_>) -> Option<&'o str> {
        match self {
            Vendor::Salesforce => output.id.as_deref(),
            Vendor::Servicenow => output.number.as_deref(),
            Vendor::Jira => output.key.as_deref(),
            Vendor::Slack => output.ts.as_deref(),
        }
    }
}

/// The automation the rows run, and what its results must carry.
#[derive(Clone, Debug)]
pub struct Workload {
    pub vendor: Vendor,
    pub automation: String,
    /// Whether each result must carry the vendor's output field (not the echo consumer's
    /// results, which carry no output).
    expects_output: bool,
}

impl Workload {
    /// Connects the vendor's sandbox and publishes its automation (with `upsert`, Salesforce's
    /// Create Lead upserting on the execution id).
    pub async fn set_up(env: &TestEnv, vendor: Vendor, upsert: bool) -> Self {
        let automation = match vendor {
            Vendor::Salesforce if upsert => env.upserting_lead_automation().await,
            Vendor::Salesforce => env.lead_automation().await,
            Vendor::Servicenow => env.incident_automation().await,
            Vendor::Jira => {
                let connection = env.jira_connection("bench-api-token").await;
                env.published_automation(vendor.template(), &connection, "Bench issue", None)
                    .await
            }
            Vendor::Slack => env.slack_automation("Bench", "xoxb-bench").await,
        };
        Self {
            vendor,
            automation,
            expects_output: true,
        }
    }

    /// The same requests, answered by the echo consumer: their results carry no output.
    pub fn echoed(&self) -> Self {
        Self {
            expects_output: false,
            ..self.clone()
        }
    }

    /// The `i`th request of a run: its execution id and body.
    pub fn request(&self, env: &TestEnv, i: usize) -> (String, Vec<u8>) {
        let parameters = match self.vendor {
            Vendor::Salesforce => json!({"LastName": format!("B{i}"), "Company": "Bench"}),
            Vendor::Servicenow => json!({"short_description": format!("Bench {i}")}),
            Vendor::Jira => {
                json!({"project": "ENG", "issue_type": "Task", "summary": format!("Bench {i}")})
            }
            Vendor::Slack => json!({"channel": "#general", "text": format!("Bench {i}")}),
        };
        env.request(&self.automation, parameters)
    }

    /// Whether a result counts as succeeded: its status, and the output this vendor's
    /// automation maps.
    pub fn succeeded(&self, outcome: &Outcome) -> bool {
        outcome.status == "succeeded"
            && (!self.expects_output
                || outcome
                    .output
                    .as_ref()
                    .and_then(|o| self.vendor.output_field(o))
                    .is_some_and(|v| !v.is_empty()))
    }
}

/// What the results reader takes from an `ExecutionResultV1`: borrowed from the body where it
/// can be, the client's own CPU being taken from the cores the pipeline runs on.
#[derive(serde::Deserialize)]
pub struct Outcome<'a> {
    pub execution_id: Option<&'a str>,
    pub status: &'a str,
    #[serde(borrow)]
    output: Option<Output<'a>>,
}

/// The output fields [`Vendor::output_field`] reads; the others are skipped unread.
#[derive(serde::Deserialize)]
struct Output<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(vendor: Vendor) -> Workload {
        Workload {
            vendor,
            automation: String::new(),
            expects_output: true,
        }
    }

    #[test]
    fn a_result_counts_only_with_its_vendors_output() {
        let jira = br#"{"execution_id":"e","status":"succeeded","output":{"id":"10001","key":"ENG-1","self":"http:\/\/x"}}"#;
        let lead =
            br#"{"execution_id":"e","status":"succeeded","output":{"id":"00Q000000000001"}}"#;
        let failed =
            br#"{"execution_id":"e","status":"failed","output":null,"error":{"code":"x"}}"#;
        let bare = br#"{"execution_id":"e","status":"succeeded"}"#;
        let parse = |b: &'static [u8]| serde_json::from_slice::<Outcome>(b).expect("parses");
        assert!(workload(Vendor::Jira).succeeded(&parse(jira)));
        assert!(!workload(Vendor::Jira).succeeded(&parse(lead)));
        assert!(workload(Vendor::Salesforce).succeeded(&parse(lead)));
        assert!(!workload(Vendor::Slack).succeeded(&parse(jira)));
        assert!(!workload(Vendor::Salesforce).succeeded(&parse(failed)));
        assert!(!workload(Vendor::Servicenow).succeeded(&parse(bare)));
        // The echo consumer's results carry no output, and count on their status.
        assert!(
            workload(Vendor::Servicenow)
                .echoed()
                .succeeded(&parse(bare))
        );
        assert!(
            !workload(Vendor::Servicenow)
                .echoed()
                .succeeded(&parse(failed))
        );
    }
}
