//! Password hashing: Argon2id with a random salt per password, in the PHC
//! string format (`$argon2id$v=19$m=...,t=...,p=1$salt$hash`), so the cost
//! a hash was made with travels with it.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// The cost of new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// Hashes `password` with a fresh random salt.
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, PasswordError> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| PasswordError(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches `hash`. A malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordCost = PasswordCost {
        memory_kib: 64,
        iterations: 1,
    };

    #[test]
    fn hashes_verify_and_are_salted() {
        let first = hash_password("s3cret", CHEAP).unwrap();
        let second = hash_password("s3cret", CHEAP).unwrap();
        assert_ne!(first, second, "each hash has its own salt");
        assert!(first.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &first));
        assert!(verify_password("s3cret", &second));
        assert!(!verify_password("s3cret!", &first));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
