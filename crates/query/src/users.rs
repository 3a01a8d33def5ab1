//! Statements about users and their sessions: CREATE, ALTER and DROP
//! USER, `EXECUTE AS USER` and `KILL LIVE QUERY`. Who may run each is in
//! `docs/security.md`.

use quiver_catalog::UserRecord;
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
        self.require_admin("CREATE USER")?;
        let catalog = self.engine().catalog();
        let id = UserId::parse(name)?;
        if catalog.user(&id).is_some() && if_not_exists {
            return Ok(done(0, format!("User {id} already exists")));
        }
        let hash = self.engine().hash_password(password).await?;
        let now = chrono::Utc::now().timestamp_micros();
        catalog.create_user(UserRecord {
            id: id.clone(),
            role,
            email,
            password_hash: Some(hash),
            created_at: now,
            updated_at: now,
        })?;
        Ok(done(0, format!("User {id} created")))
    }

    pub(crate) async fn alter_user(
        &self,
        name: &str,
        change: UserChange,
    ) -> Result<StatementOutput> {
        let id = UserId::parse(name)?;
        let own_password = id == self.access.user && matches!(change, UserChange::Password(_));
        if !own_password {
            self.require_admin("ALTER USER (other than your own password)")?;
        }
        let catalog = self.engine().catalog();
        let mut user = catalog
            .user(&id)
            .map(|u| (*u).clone())
            .ok_or_else(|| QueryError::invalid(format!("user not found: {id}")))?;
        match change {
            UserChange::Password(password) => {
                user.password_hash = Some(self.engine().hash_password(password).await?);
            }
            UserChange::Role(role) => {
                if id == UserId::root() && role != Role::System {
                    return Err(QueryError::invalid(
                        "root keeps the system role".to_string(),
                    ));
                }
                user.role = role;
            }
            UserChange::Email(email) => user.email = Some(email),
        }
        user.updated_at = chrono::Utc::now().timestamp_micros();
        catalog.update_user(user)?;
        Ok(done(0, format!("User {id} altered")))
    }

    pub(crate) fn drop_user(&self, name: &str, if_exists: bool) -> Result<StatementOutput> {
        self.require_admin("DROP USER")?;
        let id = UserId::parse(name)?;
        if id == UserId::root() {
            return Err(QueryError::invalid("root cannot be dropped".to_string()));
        }
        if self.engine().catalog().drop_user(&id)? {
            Ok(done(0, format!("User {id} dropped")))
        } else if if_exists {
            Ok(done(0, format!("User {id} does not exist")))
        } else {
            Err(QueryError::invalid(format!("user not found: {id}")))
        }
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
