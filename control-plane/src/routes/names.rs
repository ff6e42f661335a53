//! Names: what a record's name may hold, and the uniqueness of a tenant's connection and
//! automation names as a reader sees them (the database's `name_key`, migration V24).

use crate::error::ApiError;
use aic_proto::TenantId;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// A record's name, trimmed: 1 to 200 characters, else a 422 naming the `name` field.
pub fn checked_name(name: &str) -> Result<&str, ApiError> {
    bounded_name("name", name)
}

/// The name in `field`, trimmed: 1 to 200 characters, none of them a control character (a line
/// break, a bell) or a bidirectional control (U+202E before `cod.exe` shows it to a reader
/// as `exe.doc`), else a 422 naming `field` and where the character is.
pub fn bounded_name<'n>(field: &str, name: &'n str) -> Result<&'n str, ApiError> {
    name_in(field, name).map_err(|why| ApiError::invalid(field, why))
}

/// `name` trimmed, or why it cannot be the name in `field` (as [`bounded_name`] checks it; the
/// command line's names too).
pub fn name_in<'n>(field: &str, name: &'n str) -> Result<&'n str, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(format!("{field} must be 1 to 200 characters"));
    }
    if name.chars().all(aic_proto::text::shows_nothing) {
        return Err(format!(
            "{field} must show at least one character (it holds only invisible ones)"
        ));
    }
    let hidden = aic_proto::text::breaks_a_label;
    match name.chars().enumerate().find(|(_, c)| hidden(*c)) {
        Some((at, c)) => Err(format!(
            "{field} must not hold control characters (U+{:04X} at character {})",
            c as u32,
            at + 1
        )),
        None => Ok(name),
    }
}

/// What has a name unique within its tenant.
#[derive(Clone, Copy, Debug)]
pub enum Named {
    /// A connection.
    Connection,
    /// An automation.
    Automation,
}

impl Named {
    /// How a message names one: `a connection`.
    pub fn what(self) -> &'static str {
        match self {
            Named::Connection => "a connection",
            Named::Automation => "an automation",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Named::Connection => "connections",
            Named::Automation => "automations",
        }
    }
}

/// The name of the tenant's `kind` (other than `other_than`) that `name` reads as: the same
/// once case, spacing, character widths and invisible characters are set aside — the
/// database's `name_key`, which the tenant's names are unique by.
async fn same_name(
    client: &impl GenericClient,
    kind: Named,
    tenant: TenantId,
    name: &str,
    other_than: Option<Uuid>,
) -> Result<Option<String>, ApiError> {
    let sql = format!(
        "SELECT name FROM {} WHERE tenant_id = $1 AND name_key(name) = name_key($2) \
         AND id IS DISTINCT FROM $3 ORDER BY created_at LIMIT 1",
        kind.table()
    );
    let row = client
        .query_opt(&sql, &[&tenant.0, &name, &other_than])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Refuses `name` for the tenant's `kind` `other_than` (none for a new one) when another
/// already has it, or a name that reads as it, with a 409 `name_taken` naming that one. An
/// edit asks before it writes; [`unique_name`] answers a racing write the index stopped.
pub async fn name_free(
    client: &impl GenericClient,
    kind: Named,
    tenant: TenantId,
    name: &str,
    other_than: Option<Uuid>,
) -> Result<(), ApiError> {
    match same_name(client, kind, tenant, name, other_than).await? {
        Some(existing) => Err(name_taken(kind, name, &existing)),
        None => Ok(()),
    }
}

/// 409 `name_taken`: the tenant's `kind` named `existing` already has `given` as its name, or a
/// name `given` reads as.
fn name_taken(kind: Named, given: &str, existing: &str) -> ApiError {
    let what = kind.what();
    let message = if given == existing {
        format!("{what} named '{existing}' already exists")
    } else {
        format!(
            "{what} named '{existing}' already exists, and '{given}' reads as the same name \
             (names differing only in case, spacing, character widths or invisible characters \
             are one name)"
        )
    };
    ApiError::conflict("name_taken", message)
}

/// The 409 for a new record's `name` that the tenant's unique names refused, naming the one
/// it clashed with.
pub async fn clashed(
    client: &impl GenericClient,
    kind: Named,
    tenant: TenantId,
    name: &str,
) -> ApiError {
    match name_free(client, kind, tenant, name, None).await {
        Err(refused) => refused,
        // The clashing row gone since (deleted meanwhile): the name alone.
        Ok(()) => name_taken(kind, name, name),
    }
}

/// A write's database error: [`name_taken`] when the tenant's unique name refused it (a
/// racing write: the one that lost names only its own name), else as it is.
pub fn unique_name(e: tokio_postgres::Error, kind: Named, name: &str) -> ApiError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        name_taken(kind, name, name)
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_with_a_hidden_character_is_refused_saying_where() {
        assert_eq!(
            super::bounded_name("system", " Teams bot ").ok(),
            Some("Teams bot")
        );
        for blank in ["\u{200b}", "\u{3164}", "\u{2800}", "\u{ad}\u{feff}"] {
            let e = super::checked_name(blank).expect_err(blank).detail();
            assert!(
                e.message.contains("only invisible"),
                "{blank:?}: {}",
                e.message
            );
        }
        let emoji = "Ops \u{1f469}\u{200d}\u{1f4bb} bot";
        assert_eq!(
            super::checked_name(emoji).ok(),
            Some(emoji),
            "a joiner is no control"
        );
        for (name, says) in [
            ("a\nb", "U+000A at character 2"),
            ("a\u{7}", "U+0007 at character 2"),
            ("\u{202e}cod.exe", "U+202E at character 1"),
            ("x\u{2067}y", "U+2067 at character 2"),
            ("a\u{85}b", "U+0085 at character 2"),
            ("one\u{2028}two", "U+2028 at character 4"),
        ] {
            let e = super::bounded_name("system", name)
                .expect_err(name)
                .detail();
            assert_eq!(e.field.as_deref(), Some("system"), "{name:?}");
            assert!(
                e.message.ends_with(&format!("({says})")),
                "{name:?}: {}",
                e.message
            );
        }
    }
}
