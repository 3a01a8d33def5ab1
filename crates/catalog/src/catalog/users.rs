//! Users and the refresh-token families of their sign-ins, as the
//! catalog stores them: users as rows of `system.users`, families as meta
//! records (one per sign-in, so that rotation holds across restarts).

use std::sync::Arc;

use quiver_common::{Role, UserId};

use super::{Catalog, CatalogError};
use crate::defs::UserRecord;
use crate::system::{self, SystemTable};

impl Catalog {
    pub fn user(&self, id: &UserId) -> Option<Arc<UserRecord>> {
        self.users.get(id).map(|u| u.value().clone())
    }

    /// Every user, sorted by id.
    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        let mut out: Vec<_> = self.users.iter().map(|u| u.value().clone()).collect();
        out.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        out
    }

    /// Stores a new user.
    pub fn create_user(&self, user: UserRecord) -> Result<Arc<UserRecord>, CatalogError> {
        self.store_user(user, false)
    }

    /// Replaces a user's stored record (role, password hash, email).
    pub fn update_user(&self, user: UserRecord) -> Result<Arc<UserRecord>, CatalogError> {
        self.store_user(user, true)
    }

    fn store_user(
        &self,
        user: UserRecord,
        existing: bool,
    ) -> Result<Arc<UserRecord>, CatalogError> {
        let _ddl = self.ddl.lock();
        match (existing, self.users.contains_key(&user.id)) {
            (true, false) => return Err(CatalogError::UserNotFound(user.id)),
            (false, true) => return Err(CatalogError::UserExists(user.id)),
            _ => {}
        }
        self.write_user(user)
    }

    /// Changes a user's stored record as `change` says, read and written
    /// under the catalog's lock so that concurrent changes all count. The
    /// user as stored now, or `None` when there is none.
    pub fn modify_user(
        &self,
        id: &UserId,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<Option<Arc<UserRecord>>, CatalogError> {
        let _ddl = self.ddl.lock();
        let Some(user) = self.users.get(id).map(|u| u.value().clone()) else {
            return Ok(None);
        };
        let mut user = (*user).clone();
        change(&mut user);
        self.write_user(user).map(Some)
    }

    /// Ends every token issued to a user so far: the user's token epoch
    /// moves on.
    pub fn end_tokens(&self, id: &UserId) -> Result<Option<Arc<UserRecord>>, CatalogError> {
        self.modify_user(id, |user| user.token_epoch += 1)
    }

    /// Writes a user's record; the caller holds the catalog's lock.
    fn write_user(&self, user: UserRecord) -> Result<Arc<UserRecord>, CatalogError> {
        let mut batch = self.store.batch();
        self.put(&mut batch, SystemTable::Users, system::user_row(&user));
        self.store.commit(batch)?;
        let user = Arc::new(user);
        self.users.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    /// Every refresh-token family still stored.
    pub fn refresh_families(&self) -> Result<Vec<RefreshFamily>, CatalogError> {
        self.store
            .scan_meta(REFRESH_FAMILY_PREFIX)
            .map_err(CatalogError::from)?
            .into_iter()
            .filter_map(|(key, value)| {
                let id = std::str::from_utf8(&key[REFRESH_FAMILY_PREFIX.len()..]).ok()?;
                let mut family: RefreshFamily = serde_json::from_slice(&value).ok()?;
                family.id = id.to_string();
                Some(Ok(family))
            })
            .collect()
    }

    /// Stores a refresh-token family's newest token.
    pub fn put_refresh_family(&self, family: &RefreshFamily) -> Result<(), CatalogError> {
        let mut batch = self.store.batch();
        batch.put_meta(
            &refresh_family_key(&family.id),
            &serde_json::to_vec(family).expect("a family serializes"),
        );
        Ok(self.store.commit(batch)?)
    }

    /// Forgets refresh-token families.
    pub fn remove_refresh_families<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CatalogError> {
        let mut batch = self.store.batch();
        for id in ids {
            batch.delete_meta(&refresh_family_key(id));
        }
        Ok(self.store.commit(batch)?)
    }

    /// Removes a user; `false` when there was none.
    pub fn drop_user(&self, id: &UserId) -> Result<bool, CatalogError> {
        let _ddl = self.ddl.lock();
        if !self.users.contains_key(id) {
            return Ok(false);
        }
        let mut batch = self.store.batch();
        self.delete(&mut batch, SystemTable::Users, system::user_key(id));
        self.store.commit(batch)?;
        self.users.remove(id);
        Ok(true)
    }
}

const REFRESH_FAMILY_PREFIX: &[u8] = b"refresh_family/";

fn refresh_family_key(id: &str) -> Vec<u8> {
    [REFRESH_FAMILY_PREFIX, id.as_bytes()].concat()
}

/// The refresh tokens that descend from one sign-in: only the newest may
/// be used, once. Kept so that the rule holds across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshFamily {
    /// Stored as the record's key.
    #[serde(skip)]
    pub id: String,
    pub user: UserId,
    /// The id of the family's newest refresh token.
    pub newest: String,
    /// When the newest token expires, in seconds since the Unix epoch.
    pub expires_at: i64,
}

/// The built-in superuser, without a password until one is set.
pub(super) fn root_user(now: i64) -> UserRecord {
    UserRecord {
        id: UserId::root(),
        role: Role::System,
        email: None,
        password_hash: None,
        created_at: now,
        updated_at: now,
        token_epoch: 0,
    }
}
