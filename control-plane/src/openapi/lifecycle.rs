//! The operations of an automation's and a connection's life after their creation, and the
//! filters each list takes in its query string.

use super::{Op, array, schema};
use crate::routes::automations::{self, edit, trial, versions};
use crate::routes::connections;
use schemars::generate::SchemaGenerator;
use serde_json::Value;

/// Edits of connections and automations, and the automations' version history.
pub(super) fn lifecycle_operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let none = Value::Null;
    let op = |method, path, id, summary, body, ok| Op {
        method,
        path,
        id,
        summary,
        roles: "admin, editor",
        body,
        ok,
    };
    vec![
        op(
            "patch",
            "/v1/connections/{id}",
            "updateConnection",
            "Rename, re-authorise (new secrets, auth type or domain: status back to untested) or cap a connection",
            Some(schema::<connections::edit::UpdateConnection>(g)),
            ("200", schema::<connections::ConnectionView>(g)),
        ),
        op(
            "delete",
            "/v1/connections/{id}",
            "deleteConnection",
            "Delete a connection no automation runs on",
            None,
            ("204", none.clone()),
        ),
        op(
            "patch",
            "/v1/automations/{id}",
            "updateAutomation",
            "Edit the draft, rename, pause or resume (the status takes effect at once)",
            Some(schema::<edit::UpdateAutomation>(g)),
            ("200", schema::<automations::AutomationView>(g)),
        ),
        op(
            "delete",
            "/v1/automations/{id}",
            "deleteAutomation",
            "Delete an automation and its versions (executions keep their records)",
            None,
            ("204", none.clone()),
        ),
        Op {
            roles: "admin, editor, viewer",
            ..op(
                "get",
                "/v1/automations/{id}/executions",
                "listExecutions",
                "An automation's executions, newest first, by status, a page at a time",
                None,
                (
                    "200",
                    schema::<crate::routes::executions::history::ExecutionPage>(g),
                ),
            )
        },
        op(
            "get",
            "/v1/automations/{id}/fields",
            "listAutomationFields",
            "The fields the automation's object can be given, from the vendor (or the catalogue), with the parameter mapped to each",
            None,
            ("200", schema::<automations::fields::FieldList>(g)),
        ),
        op(
            "post",
            "/v1/automations/{id}/test",
            "testAutomation",
            "Run the draft once against the vendor (a real call), before publishing it",
            Some(schema::<trial::TestRunInput>(g)),
            ("200", schema::<trial::TestRun>(g)),
        ),
        op(
            "post",
            "/v1/automations/{id}/duplicate",
            "duplicateAutomation",
            "Copy an automation into a new unpublished draft",
            Some(schema::<edit::DuplicateInput>(g)),
            ("201", schema::<automations::AutomationView>(g)),
        ),
        Op {
            roles: "admin, editor, viewer",
            ..op(
                "get",
                "/v1/automations/{id}/versions",
                "listVersions",
                "The version history, newest first",
                None,
                ("200", array::<versions::VersionEntry>(g)),
            )
        },
        op(
            "patch",
            "/v1/automations/{id}/versions/{number}",
            "renameVersion",
            "Rename a version (nothing else of it can change)",
            Some(schema::<versions::RenameVersion>(g)),
            ("200", schema::<versions::VersionEntry>(g)),
        ),
        op(
            "delete",
            "/v1/automations/{id}/versions/{number}",
            "deleteVersion",
            "Delete a version other than the live one",
            None,
            ("204", none),
        ),
        op(
            "post",
            "/v1/automations/{id}/versions/{number}/restore",
            "restoreVersion",
            "Make a version live again and reset the draft to it",
            None,
            ("200", schema::<automations::AutomationView>(g)),
        ),
        op(
            "post",
            "/v1/automations/{id}/versions/delete",
            "deleteVersions",
            "Delete several versions, all or none (never the live one)",
            Some(schema::<versions::DeleteVersions>(g)),
            ("200", schema::<versions::DeletedVersions>(g)),
        ),
    ]
}

/// The filters a list takes in its query string.
pub(super) fn query_parameters(
    method: &str,
    path: &str,
) -> &'static [(&'static str, &'static str)] {
    const APP: (&str, &str) = ("app", "only this app's (id, e.g. `salesforce`)");
    const DOMAIN: (&str, &str) = (
        "domain",
        "only this business domain's (id, see `/v1/domains`)",
    );
    const Q: (&str, &str) = ("q", "search text, case- and accent-insensitive");
    const STATUS: (&str, &str) = (
        "status",
        "`queued`, `running`, `succeeded`, `failed` or `unknown_outcome`",
    );
    const SINCE: (&str, &str) = (
        "since",
        "only those enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`)",
    );
    const LIMIT: (&str, &str) = ("limit", "executions per page, 1 to 200 (default 50)");
    const AFTER: (&str, &str) = ("after", "the `next` of the page before");
    match (method, path) {
        ("get", "/v1/apps") => &[DOMAIN, Q],
        ("get", "/v1/templates") => &[APP, DOMAIN, Q],
        ("get", "/v1/automations") => &[APP, DOMAIN, ("status", "`running` or `paused`"), Q],
        ("get", "/v1/automations/{id}/executions") => &[STATUS, SINCE, LIMIT, AFTER],
        ("get", "/v1/executions") => &[STATUS, SINCE, LIMIT, AFTER],
        ("get", "/v1/automations/{id}/fields") => &[
            (
                "object",
                "another object than the template's (Salesforce sObject or ServiceNow table)",
            ),
            ("project", "Jira: the project whose create screen to read"),
            (
                "issue_type",
                "Jira: the issue type (name or id) of that screen",
            ),
        ],
        ("get", "/v1/tokens") => &[
            ("role", "`admin`, `editor`, `viewer` or `service`"),
            ("status", "`active`, `expired` or `revoked`"),
        ],
        ("get", "/v1/audit-events") => &[
            ("action", "one action, e.g. `connection.reauthorised`"),
            (
                "target_kind",
                "`connection`, `automation`, `token` or `deployable`",
            ),
            ("target_id", "one record's events"),
            ("actor_id", "one token's doings"),
            ("limit", "events per page, 1 to 200 (default 50)"),
            AFTER,
        ],
        ("get", "/v1/deployables") => &[
            ("automation_id", "items running this automation"),
            (
                "connection_id",
                "items running an automation on this connection",
            ),
            ("system", "items of this system"),
            ("kind", "`flow`, `bot_step`, `launcher` or `other`"),
            Q,
        ],
        ("get", "/v1/connections") => &[
            APP,
            (
                "status",
                "`untested`, `connected`, `failing` or `needs_reauthorization`",
            ),
            Q,
        ],
        _ => &[],
    }
}
