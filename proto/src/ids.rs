//! Typed identifiers: a UUID that knows what it names, so a tenant id is never passed as a
//! connection id. On the wire each is a plain UUID string.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        #[schemars(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7), so recent rows sit together in indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

typed_id!(
    /// A tenant: every record belongs to exactly one, and nothing crosses tenants.
    TenantId
);
typed_id!(
    /// A connection: one tested credential for one app instance.
    ConnectionId
);
typed_id!(
    /// An automation ("My automations"): a template bound to a connection.
    AutomationId
);
typed_id!(
    /// One immutable published version of an automation.
    VersionId
);
typed_id!(
    /// One run of a published automation; the key of the execution ledger.
    ExecutionId
);
