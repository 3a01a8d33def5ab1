//! What each role may do: read and write rules per table type, and the
//! statements only dba and system may run. See `docs/security.md`.

use quiver_catalog::{AccessLevel, TableDef, TableType};
use quiver_common::Role;

use crate::error::{QueryError, Result};
use crate::executor::QuerySession;

impl QuerySession {
    fn is_admin(&self) -> bool {
        matches!(self.role, Role::Dba | Role::System)
    }

    /// Refuses `what` unless the session's role is dba or system.
    pub(crate) fn require_admin(&self, what: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(QueryError::PermissionDenied(format!(
            "{what} needs the dba or system role; {} has role {}",
            self.user, self.role
        )))
    }

    /// Whether the session may read `def`: USER and STREAM tables for
    /// everyone; SHARED tables for service and above, and for users when
    /// they are PUBLIC.
    pub(crate) fn check_read(&self, def: &TableDef) -> Result<()> {
        let allowed = match def.table_type {
            TableType::User | TableType::Stream => true,
            TableType::Shared => {
                self.role != Role::User || def.options.access_level == Some(AccessLevel::Public)
            }
        };
        if allowed && self.role != Role::Anonymous {
            return Ok(());
        }
        Err(QueryError::PermissionDenied(format!(
            "reading {} ({} table) needs the service role or above; {} has role {}",
            def.qualified_name(),
            def.table_type.as_str(),
            self.user,
            self.role
        )))
    }

    /// Whether the session may write `def`: USER and STREAM tables for
    /// everyone, SHARED tables for service and above.
    pub(crate) fn check_write(&self, def: &TableDef) -> Result<()> {
        let allowed = match def.table_type {
            TableType::User | TableType::Stream => self.role != Role::Anonymous,
            TableType::Shared => matches!(self.role, Role::Service | Role::Dba | Role::System),
        };
        if allowed {
            return Ok(());
        }
        Err(QueryError::PermissionDenied(format!(
            "writing {} ({} table) needs the service role or above; {} has role {}",
            def.qualified_name(),
            def.table_type.as_str(),
            self.user,
            self.role
        )))
    }
}
