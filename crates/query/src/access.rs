//! What each role may do: read and write rules per table type, and the
//! statements only dba and system may run. See `docs/security.md`.
//!
//! An [`Access`] is bound into everything a session resolves tables
//! through: the DataFusion catalog it plans against (so views, joins,
//! subqueries, CTEs, column defaults and `INSERT ... SELECT` reach tables
//! only through it), the key-read fast path, DML targets, DESCRIBE and
//! live subscriptions.

use quiver_catalog::{AccessLevel, TableDef, TableType};
use quiver_common::{Role, UserId};

use crate::error::{QueryError, Result};
use crate::executor::QuerySession;

/// Who a session acts as.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) user: UserId,
    pub(crate) role: Role,
    /// Acting for another user (`EXECUTE AS USER`) rather than as the
    /// user who signed in.
    pub(crate) impersonated: bool,
}

impl Access {
    pub(crate) fn new(user: UserId, role: Role) -> Self {
        Self {
            user,
            role,
            impersonated: false,
        }
    }

    /// Refuses managing (creating, altering, dropping) a user of `role`
    /// unless this session's role is above it; `system` manages every
    /// role. Root itself is left to root (see `users.rs`).
    pub(crate) fn check_manage(&self, action: &str, role: Role) -> Result<()> {
        if self.role == Role::System || (self.is_admin() && role < self.role) {
            return Ok(());
        }
        Err(self.denied(
            &format!("{action} (role {role})"),
            "the dba or system role, above the user's role",
        ))
    }

    /// The refusal of `action`, which needs `needs`.
    pub(crate) fn denied(&self, action: &str, needs: &str) -> QueryError {
        QueryError::PermissionDenied {
            action: action.to_string(),
            needs: needs.to_string(),
            user: self.user.clone(),
            role: self.role,
        }
    }

    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.role, Role::Dba | Role::System)
    }

    /// Refuses `what` unless the role is dba or system.
    pub(crate) fn require_admin(&self, what: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(self.denied(what, "the dba or system role"))
    }

    /// Whether `def` may be read: USER and STREAM tables by everyone;
    /// SHARED tables by service and above, and by users when they are
    /// PUBLIC; system tables by dba and system.
    pub(crate) fn may_read(&self, def: &TableDef) -> bool {
        if def.namespace.as_str() == crate::system::SYSTEM_NAMESPACE {
            return self.is_admin();
        }
        let allowed = match def.table_type {
            TableType::User | TableType::Stream => true,
            TableType::Shared => {
                self.role != Role::User || def.options.access_level == Some(AccessLevel::Public)
            }
        };
        allowed && self.role != Role::Anonymous
    }

    pub(crate) fn check_read(&self, def: &TableDef) -> Result<()> {
        if self.may_read(def) {
            return Ok(());
        }
        if def.namespace.as_str() == crate::system::SYSTEM_NAMESPACE {
            return self.require_admin(&format!("reading system.{}", def.name));
        }
        Err(self.denied(
            &format!(
                "reading {} ({} table)",
                def.qualified_name(),
                def.table_type.as_str()
            ),
            "the service role or above",
        ))
    }

    /// Whether `def` may be written: USER and STREAM tables by everyone,
    /// SHARED tables by service and above.
    pub(crate) fn check_write(&self, def: &TableDef) -> Result<()> {
        let allowed = match def.table_type {
            TableType::User | TableType::Stream => self.role != Role::Anonymous,
            TableType::Shared => matches!(self.role, Role::Service | Role::Dba | Role::System),
        };
        if allowed {
            return Ok(());
        }
        Err(self.denied(
            &format!(
                "writing {} ({} table)",
                def.qualified_name(),
                def.table_type.as_str()
            ),
            "the service role or above",
        ))
    }
}

impl QuerySession {
    pub(crate) fn require_admin(&self, what: &str) -> Result<()> {
        self.access.require_admin(what)
    }

    pub(crate) fn check_read(&self, def: &TableDef) -> Result<()> {
        self.access.check_read(def)
    }
}
