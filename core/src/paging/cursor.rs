//! Opaque, tamper-evident RFC 9865 cursors.
//!
//! A cursor carries a [`CursorPosition`] and an expiry time, authenticated with HMAC-SHA256
//! over those bytes and a [`QueryFingerprint`] of the query it belongs to. The fingerprint is
//! not stored in the token: a cursor presented with a different query simply fails
//! authentication, exactly like a tampered one. The token is URL-safe base64 without padding,
//! so it uses only RFC 3986 unreserved characters as RFC 9865 §2 requires.
//!
//! Layout before encoding: `version (1 byte) | expiry (i64 Unix seconds, big-endian) |
//! position (JSON) | HMAC-SHA256 (32 bytes)`. The position is readable by whoever holds the
//! token (it is the sort value and id of a resource the client has already seen); it is never
//! trusted unless the MAC verifies.

use crate::error::{ScimError, ScimType};
use crate::filter::Filter;
use crate::query::{CursorPosition, Sort};
use crate::schema::ResourceKind;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// The longest cursor accepted, in characters. Tokens grow with the sort value of the page
/// boundary; this bounds decoding work on hostile input while leaving room for long values.
pub const MAX_CURSOR_LEN: usize = 16 * 1024;

const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8;
const MAC_LEN: usize = 32;
/// Separates cursor MACs from any other use of the same key.
const DOMAIN: &[u8] = b"scimd cursor v1\0";

/// The secret that authenticates cursors. Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CursorKey(Vec<u8>);

impl CursorKey {
    /// A key from secret bytes (32 random bytes are plenty).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        CursorKey(bytes.into())
    }

    /// Whether no key was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

/// A digest of everything that defines a query's result order and membership: source,
/// resource type, filter and sort. A cursor is valid only for the query it was minted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryFingerprint([u8; 32]);

impl QueryFingerprint {
    /// The fingerprint of a query. `filter` should be the resolved filter, whose canonical
    /// text does not depend on how the client spelled names and keywords.
    pub fn new(
        source: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
    ) -> Self {
        let filter = filter.map(ToString::to_string).unwrap_or_default();
        let sort = sort
            .map(|s| {
                format!(
                    "{} {}",
                    s.path,
                    if s.descending {
                        "descending"
                    } else {
                        "ascending"
                    }
                )
            })
            .unwrap_or_default();
        let mut h = Sha256::new();
        // Length prefixes keep field boundaries unambiguous.
        for part in [source, kind.name(), filter.as_str(), sort.as_str()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        QueryFingerprint(h.finalize().into())
    }
}

/// Encodes and decodes cursors with one key and lifetime.
#[derive(Clone)]
pub struct CursorCodec {
    mac: HmacSha256,
    timeout: Duration,
}

impl fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorCodec")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CursorCodec {
    /// A codec whose cursors are valid for `timeout` after they are minted.
    pub fn new(key: &CursorKey, timeout: Duration) -> Self {
        let mac = <HmacSha256 as Mac>::new_from_slice(&key.0).unwrap_or_else(|_| {
            // HMAC accepts keys of every length; this branch cannot be taken.
            <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
        });
        CursorCodec { mac, timeout }
    }

    /// How long cursors stay valid.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn tag(&self, fingerprint: &QueryFingerprint, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(&fingerprint.0);
        mac.update(body);
        mac
    }

    /// Mints a cursor for `position` in the query `fingerprint`, valid until `now + timeout`.
    pub fn encode_at(
        &self,
        position: &CursorPosition,
        fingerprint: &QueryFingerprint,
        now: OffsetDateTime,
    ) -> String {
        let timeout = i64::try_from(self.timeout.as_secs()).unwrap_or(i64::MAX);
        let expiry = now.unix_timestamp().saturating_add(timeout);
        let mut body = Vec::with_capacity(64);
        body.push(FORMAT_VERSION);
        body.extend_from_slice(&expiry.to_be_bytes());
        // Serializing a CursorPosition (strings and a JSON value) cannot fail.
        body.extend(serde_json::to_vec(position).unwrap_or_default());
        let tag = self.tag(fingerprint, &body).finalize().into_bytes();
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// [`CursorCodec::encode_at`] at the current time.
    pub fn encode(&self, position: &CursorPosition, fingerprint: &QueryFingerprint) -> String {
        self.encode_at(position, fingerprint, OffsetDateTime::now_utc())
    }

    /// Reads a cursor minted for the query `fingerprint`. Malformed, altered or foreign cursors
    /// are `invalidCursor`; cursors past their expiry are `expiredCursor`.
    pub fn decode_at(
        &self,
        token: &str,
        fingerprint: &QueryFingerprint,
        now: OffsetDateTime,
    ) -> Result<CursorPosition, ScimError> {
        let invalid = |why: &str| {
            ScimError::typed(
                ScimType::InvalidCursor,
                format!(
                    "The cursor is invalid ({why}); use an empty cursor for the first page and \
                     nextCursor or previousCursor values of this query afterwards"
                ),
            )
        };
        if token.len() > MAX_CURSOR_LEN {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid("malformed"))?;
        if bytes.len() < HEADER_LEN + MAC_LEN {
            return Err(invalid("malformed"));
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        self.tag(fingerprint, body)
            .verify_slice(tag)
            .map_err(|_| invalid("not issued for this query, or altered"))?;
        let (header, position) = body.split_at(HEADER_LEN);
        if header.first() != Some(&FORMAT_VERSION) {
            return Err(invalid("unknown format"));
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&header[1..HEADER_LEN]);
        if now.unix_timestamp() > i64::from_be_bytes(expiry) {
            return Err(ScimError::typed(
                ScimType::ExpiredCursor,
                format!(
                    "The cursor has expired; cursors are valid for {} seconds. Start again with \
                     an empty cursor",
                    self.timeout.as_secs()
                ),
            ));
        }
        serde_json::from_slice(position).map_err(|_| invalid("malformed"))
    }

    /// [`CursorCodec::decode_at`] at the current time.
    pub fn decode(
        &self,
        token: &str,
        fingerprint: &QueryFingerprint,
    ) -> Result<CursorPosition, ScimError> {
        self.decode_at(token, fingerprint, OffsetDateTime::now_utc())
    }
}
