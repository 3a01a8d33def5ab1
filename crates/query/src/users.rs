//! Statements about users and their sessions: CREATE, ALTER and DROP
//! USER, `EXECUTE AS USER` and `KILL LIVE QUERY`. Who may run each is in
//! `docs/security.md`.

use datafusion::sql::sqlparser::ast::{
    FromTable, Ident, ObjectName, ObjectNamePart, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use quiver_catalog::{TableType, UserRecord};
use quiver_common::{Role, UserId};

use crate::dialect::UserChange;
use crate::error::{QueryError, Result};
use crate::executor::{QuerySession, StatementOutput, done};

impl QuerySession {
    pub(crate) async fn create_user(
        &self,
        name: &str,
        password: String,
        role: Role,
        email: Option<String>,
        if_not_exists: bool,
    ) -> Result<StatementOutput> {
        self.access.check_manage("CREATE USER", role)?;
        let catalog = self.engine().catalog();
        let id = UserId::parse(name)?;
        if catalog.user(&id).is_some() && if_not_exists {
            return Ok(done(0, format!("User {id} already exists")));
        }
        let hash = self.engine().hash_password(password).await?;
        // Rows an earlier user of this name left (if their DROP USER was
        // cut short) are not the new user's.
        if catalog.user(&id).is_none() {
            self.delete_rows_of(&id).await?;
        }
        let now = chrono::Utc::now().timestamp_micros();
        catalog.create_user(UserRecord {
            id: id.clone(),
            role,
            email,
            password_hash: Some(hash),
            created_at: now,
            updated_at: now,
            token_epoch: 0,
        })?;
        Ok(done(0, format!("User {id} created")))
    }

    pub(crate) async fn alter_user(
        &self,
        name: &str,
        change: UserChange,
    ) -> Result<StatementOutput> {
        let id = UserId::parse(name)?;
        let password = matches!(change, UserChange::Password(_));
        if password && self.access.impersonated {
            return Err(self.access.denied(
                "changing a password inside EXECUTE AS USER",
                "signing in as that user",
            ));
        }
        let catalog = self.engine().catalog();
        // Users may change their own password (when signed in as
        // themselves) and email; nothing else of their own.
        let own_password = id == self.access.user
            && matches!(change, UserChange::Password(_) | UserChange::Email(_));
        if !own_password {
            self.require_admin("ALTER USER (other than your own password)")?;
            if id == UserId::root() && self.access.user != id {
                return Err(self.access.denied("ALTER USER root", "signing in as root"));
            }
            if id == UserId::root() && matches!(change, UserChange::Role(_)) {
                return Err(QueryError::invalid(
                    "root keeps the system role".to_string(),
                ));
            }
        }
        let stored = catalog
            .user(&id)
            .ok_or_else(|| QueryError::invalid(format!("user not found: {id}")))?;
        if !own_password {
            self.access.check_manage("ALTER USER", stored.role)?;
            if let UserChange::Role(role) = &change {
                self.access.check_manage("ALTER USER ... SET ROLE", *role)?;
            }
        }
        // The hash is made before the record is read and written, which
        // happens under the catalog's lock.
        let hash = match &change {
            UserChange::Password(password) => {
                Some(self.engine().hash_password(password.clone()).await?)
            }
            _ => None,
        };
        let ends_sessions = match &change {
            UserChange::Password(_) => Some("the user's password changed"),
            UserChange::Role(role) if *role != stored.role => Some("the user's role changed"),
            UserChange::Role(_) | UserChange::Email(_) => None,
        };
        let altered = catalog.modify_user(&id, |user| {
            match change {
                UserChange::Password(_) => user.password_hash = hash,
                UserChange::Role(role) => user.role = role,
                UserChange::Email(email) => user.email = Some(email),
            }
            if ends_sessions.is_some() {
                user.token_epoch += 1;
            }
            user.updated_at = chrono::Utc::now().timestamp_micros();
        })?;
        if altered.is_none() {
            return Err(QueryError::invalid(format!("user not found: {id}")));
        }
        if let Some(reason) = ends_sessions {
            self.engine().live().end_user(&id, reason);
        }
        Ok(done(0, format!("User {id} altered")))
    }

    /// Drops a user and every row the user owns in USER tables: a later
    /// user of the same name starts with none. The user's tokens end
    /// first, so no new statement of theirs runs while the rows go.
    pub(crate) async fn drop_user(&self, name: &str, if_exists: bool) -> Result<StatementOutput> {
        self.require_admin("DROP USER")?;
        let id = UserId::parse(name)?;
        if id == UserId::root() {
            return Err(QueryError::invalid("root cannot be dropped".to_string()));
        }
        let catalog = self.engine().catalog();
        let Some(user) = catalog.user(&id) else {
            return if if_exists {
                Ok(done(0, format!("User {id} does not exist")))
            } else {
                Err(QueryError::invalid(format!("user not found: {id}")))
            };
        };
        self.access.check_manage("DROP USER", user.role)?;
        catalog.end_tokens(&id)?;
        self.engine().live().end_user(&id, "the user was dropped");
        let rows = self.delete_rows_of(&id).await?;
        catalog.drop_user(&id)?;
        Ok(done(
            rows,
            format!("User {id} dropped, with {rows} rows of USER tables"),
        ))
    }

    /// Deletes every row `user` owns in USER tables, through DELETE's own
    /// path: cold rows get tombstones and subscribers hear of it.
    async fn delete_rows_of(&self, user: &UserId) -> Result<u64> {
        let mut owner = self.acting_as(user.clone(), Role::User);
        // All of them, however many: this is not a statement of the user's.
        owner.bounded_writes = false;
        let mut deleted = 0;
        for table in self.engine().catalog().tables() {
            let def = table.def();
            if def.table_type != TableType::User {
                continue;
            }
            let name = ObjectName(vec![
                ObjectNamePart::Identifier(Ident::with_quote('"', def.namespace.as_str())),
                ObjectNamePart::Identifier(Ident::with_quote('"', def.name.as_str())),
            ]);
            let Ok(mut parsed) = Parser::parse_sql(&GenericDialect {}, "DELETE FROM t") else {
                return Err(QueryError::Internal("a DELETE to fill in".into()));
            };
            let Some(Statement::Delete(mut delete)) = parsed.pop() else {
                return Err(QueryError::Internal("a DELETE to fill in".into()));
            };
            if let FromTable::WithFromKeyword(from) = &mut delete.from
                && let Some(TableFactor::Table { name: target, .. }) =
                    from.first_mut().map(|f| &mut f.relation)
            {
                *target = name;
            }
            if let StatementOutput::Done { row_count, .. } =
                crate::dml::delete(&owner, delete).await?
            {
                deleted += row_count;
            }
        }
        Ok(deleted)
    }

    /// Ends a live subscription: its owner's, or anyone's for dba and
    /// system.
    pub(crate) fn kill_live_query(&self, live_id: &str) -> Result<StatementOutput> {
        let live = self.engine().live();
        let owner = live
            .subscriptions()
            .into_iter()
            .find(|s| *s.live_id == *live_id)
            .map(|s| s.user.clone())
            .ok_or_else(|| {
                QueryError::invalid(format!(
                    "live query not found: {live_id} (see system.live_queries)"
                ))
            })?;
        if owner != self.access.user {
            self.require_admin("KILL LIVE QUERY of another user's subscription")?;
        }
        live.kill(live_id);
        Ok(done(0, format!("Live query {live_id} killed")))
    }

    /// A session acting as `name` for one statement: service, dba and
    /// system may act as a user whose role is below their own.
    pub(crate) fn impersonate(&self, name: &str) -> Result<QuerySession> {
        if self.access.role < Role::Service {
            return Err(self
                .access
                .denied("EXECUTE AS USER", "the service role or above"));
        }
        let id = UserId::parse(name)?;
        let target = self
            .engine()
            .catalog()
            .user(&id)
            .ok_or_else(|| QueryError::invalid(format!("user not found: {id}")))?;
        if target.role >= self.access.role {
            return Err(self.access.denied(
                &format!("EXECUTE AS USER {id} (role {})", target.role),
                "a role above it",
            ));
        }
        Ok(self.acting_as(id, target.role))
    }
}
