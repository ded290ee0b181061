//! Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 hash, compared in
//! constant time, scoped to one source.
//!
//! A secret looks like `scimd_<43 base64url characters>`; the prefix makes leaked tokens easy
//! to find with secret scanners. Several tokens per source (each named, optionally expiring,
//! revocable) let operators rotate without downtime.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use scimd_core::state::{StateStore, TokenRecord};
use scimd_core::{BackendError, ScimError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

/// The prefix of every secret.
pub const TOKEN_PREFIX: &str = "scimd_";

/// A token secret, as handed to the operator once. Never printed by `Debug`.
pub struct Secret(String);

impl Secret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Generates a new secret from the operating system's CSPRNG.
pub fn generate() -> Result<Secret, ScimError> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ScimError::internal(format!("no randomness available: {e}")))?;
    Ok(Secret(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// Lower-case hex SHA-256 of a secret: what the state store keeps.
pub fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Creates and stores a token for `source`; returns the record and the secret (to show once).
pub async fn create(
    store: &dyn StateStore,
    source: &str,
    name: &str,
    expires_in: Option<Duration>,
) -> Result<(TokenRecord, Secret), ScimError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "a token name must be 1-128 printable characters",
        ));
    }
    let secret = generate()?;
    let now = OffsetDateTime::now_utc();
    let record = TokenRecord {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        source: source.to_string(),
        name: name.to_string(),
        hash: hash(secret.expose()),
        created: now,
        expires: expires_in.map(|d| now + d),
        revoked: None,
    };
    store.insert_token(&record).await.map_err(|e| match e {
        BackendError::Uniqueness(_) => ScimError::uniqueness(format!(
            "source {source} already has a token named {name:?}"
        )),
        e => ScimError::from(e),
    })?;
    Ok((record, secret))
}

/// Why a presented token was refused. Kept apart from the SCIM error so logs can tell the cases
/// apart while the client learns nothing beyond "401".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// No token with that secret.
    Unknown,
    /// The token belongs to another source.
    OtherSource,
    /// The token expired.
    Expired,
    /// The token was revoked.
    Revoked,
}

impl Refusal {
    /// The 401 the client gets.
    pub fn to_scim(&self) -> ScimError {
        let detail = match self {
            Refusal::Missing => "A bearer token is required (Authorization: Bearer <token>)",
            _ => "The bearer token is not valid for this source",
        };
        ScimError::new(401, detail)
    }
}

/// Checks a presented secret for `source`. The stored hash is compared in constant time after
/// the lookup, so the comparison itself leaks nothing about the stored value.
pub async fn authenticate(
    store: &dyn StateStore,
    source: &str,
    presented: &str,
) -> Result<Result<TokenRecord, Refusal>, ScimError> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Ok(Err(Refusal::Missing));
    }
    let h = hash(presented);
    let Some(record) = store.find_token(&h).await.map_err(ScimError::from)? else {
        return Ok(Err(Refusal::Unknown));
    };
    if !bool::from(record.hash.as_bytes().ct_eq(h.as_bytes())) {
        return Ok(Err(Refusal::Unknown));
    }
    if record.source != source {
        return Ok(Err(Refusal::OtherSource));
    }
    let now = OffsetDateTime::now_utc();
    if record.revoked.is_some() {
        return Ok(Err(Refusal::Revoked));
    }
    if !record.is_active(now) {
        return Ok(Err(Refusal::Expired));
    }
    Ok(Ok(record))
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s`, `2w` or `1y` (365 days).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (s, m, h, d, w, y)"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (s, m, h, d, w, y)")),
    };
    if n <= 0 {
        return Err("a duration must be positive".into());
    }
    n.checked_mul(secs_per)
        .map(Duration::seconds)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::state::MemoryStateStore;

    #[test]
    fn secrets_have_256_bits_and_a_prefix() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        let raw = URL_SAFE_NO_PAD
            .decode(&a.expose()[TOKEN_PREFIX.len()..])
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_scoped_to_their_source() {
        let store = MemoryStateStore::default();
        let (rec, secret) = create(&store, "a", "ci", None).await.unwrap();
        assert_ne!(rec.hash, secret.expose());
        let listed = store.list_tokens(None).await.unwrap();
        assert!(listed.iter().all(|t| t.hash != secret.expose()));
        assert_eq!(
            authenticate(&store, "a", secret.expose()).await.unwrap(),
            Ok(rec.clone())
        );
        assert_eq!(
            authenticate(&store, "b", secret.expose()).await.unwrap(),
            Err(Refusal::OtherSource)
        );
        assert_eq!(
            authenticate(&store, "a", "scimd_nope").await.unwrap(),
            Err(Refusal::Unknown)
        );
        assert!(create(&store, "a", "ci", None).await.is_err());
    }

    #[tokio::test]
    async fn revoked_and_expired_tokens_are_refused() {
        let store = MemoryStateStore::default();
        let (_, s1) = create(&store, "a", "one", None).await.unwrap();
        store
            .revoke_token("a", "one", OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert_eq!(
            authenticate(&store, "a", s1.expose()).await.unwrap(),
            Err(Refusal::Revoked)
        );
        let (mut rec, s2) = create(&store, "a", "two", None).await.unwrap();
        rec.expires = Some(OffsetDateTime::now_utc() - Duration::seconds(1));
        let store2 = MemoryStateStore::default();
        store2.insert_token(&rec).await.unwrap();
        assert_eq!(
            authenticate(&store2, "a", s2.expose()).await.unwrap(),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_duration("12h"), Ok(Duration::hours(12)));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
