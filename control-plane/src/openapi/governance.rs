//! The operations that govern the tenant itself — its API tokens and its audit trail (admins
//! only) — and the deployable items that run its automations.

use super::{Op, array, schema};
use crate::routes::{audit, deployables, tokens};
use schemars::generate::SchemaGenerator;
use serde_json::Value;

/// Tokens and the audit trail.
pub(super) fn governance_operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let op = |method, path, id, summary, body, ok| Op {
        method,
        path,
        id,
        summary,
        roles: "admin",
        body,
        ok,
    };
    vec![
        op(
            "post",
            "/v1/tokens",
            "issueToken",
            "Issue an API token (shown once; stored as a hash)",
            Some(schema::<tokens::IssueToken>(g)),
            ("201", schema::<tokens::IssuedTokenView>(g)),
        ),
        Op {
            roles: "any",
            ..op(
                "get",
                "/v1/me",
                "me",
                "The caller's own token (its role) and tenant",
                None,
                ("200", schema::<tokens::Me>(g)),
            )
        },
        op(
            "get",
            "/v1/tokens",
            "listTokens",
            "The tenant's tokens, newest first, with when each was last used",
            None,
            ("200", array::<tokens::TokenView>(g)),
        ),
        op(
            "delete",
            "/v1/tokens/{id}",
            "revokeToken",
            "Revoke a token at once (never the last working admin token)",
            None,
            ("204", Value::Null),
        ),
        op(
            "get",
            "/v1/audit-events",
            "listAuditEvents",
            "Who changed which connection, automation or token, newest first, a page at a time",
            None,
            ("200", schema::<audit::AuditPage>(g)),
        ),
        Op {
            roles: "admin, editor, service",
            ..op(
                "post",
                "/v1/deployables",
                "registerDeployable",
                "Register a flow, bot step or launcher as running a published automation (again: update it)",
                Some(schema::<deployables::RegisterDeployable>(g)),
                ("201", schema::<deployables::DeployableView>(g)),
            )
        },
        Op {
            roles: "any",
            ..op(
                "get",
                "/v1/deployables",
                "listDeployables",
                "The items running the tenant's automations, each with its link",
                None,
                ("200", array::<deployables::DeployableView>(g)),
            )
        },
        Op {
            roles: "admin, editor, service",
            ..op(
                "delete",
                "/v1/deployables/{id}",
                "removeDeployable",
                "The item no longer runs the automation",
                None,
                ("204", Value::Null),
            )
        },
    ]
}
