//! The operations of an automation's and a connection's life after their creation, and the
//! filters each list takes in its query string.

use super::{Op, array, schema};
use crate::routes::automations::{self, duplicate, edit, trial, versions};
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
            Some(schema::<duplicate::DuplicateInput>(g)),
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
