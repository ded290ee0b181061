//! Resource metadata from the directory: ids, timestamps and the monotonic version.
//!
//! ## Versions
//! SCIM needs a `Version(u64)` that increases with every change. Where it comes from:
//!
//! - **Lossless mode**: a counter kept in the entry's `scimdJson`, incremented by every scimd
//!   write (each write is conditional on the entry's `entryCSN`, so concurrent writers cannot
//!   both increment from the same value). When the directory's mapped values no longer agree
//!   with what scimd last wrote (someone edited the entry with other LDAP tools), the version
//!   reads as counter + 1, and the next scimd write stores counter + 2: a changed resource
//!   never shows an old version.
//! - **`entryCSN`** (OpenLDAP): `YYYYmmddHHMMSS.ffffffZ#cccccc#sss#mmmmmm`, a microsecond
//!   timestamp plus a change counter that orders changes within one microsecond. The version
//!   is `(microseconds since 2000-01-01) × 4096 + min(counter, 4095)`: it increases with every
//!   change of the entry (CSNs of one entry increase), and fits 64 bits until the year 2142.
//!   A hash of the CSN would change too, but would not be monotonic.
//! - **`uSNChanged`** (Active Directory): already a monotonic integer.
//! - **`modifyTimestamp`**: seconds × 4096 × 10⁶ in the same scale; two changes within one
//!   second share a version, so this is a last resort.

use crate::config::{IdSource, VersionSource};
use crate::filter::guid_string;
use crate::mapping::{DirectoryMap, Entry};
use scimd_core::resource::Version;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// 2000-01-01T00:00:00Z as Unix seconds: the epoch of CSN-derived versions.
const EPOCH_2000: i64 = 946_684_800;

/// Parses an LDAP GeneralizedTime (`YYYYmmddHHMMSS[.fraction]Z`, also `±hhmm` offsets).
pub(crate) fn parse_generalized_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let day = u8::try_from(digits(6..8)?).ok()?;
    let hour = u8::try_from(digits(8..10)?).ok()?;
    let minute = u8::try_from(digits(10..12)?).ok()?;
    let second = u8::try_from(digits(12..14)?).ok()?;
    let mut rest = s.get(14..)?;
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        let digits_str = frac.get(..n)?;
        if n == 0 {
            return None;
        }
        let mut padded: String = digits_str.chars().take(9).collect();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
        rest = frac.get(n..)?;
    }
    let offset_secs: i32 = match rest {
        "Z" => 0,
        o if o.len() == 5 && (o.starts_with('+') || o.starts_with('-')) => {
            let h: i32 = o.get(1..3)?.parse().ok()?;
            let m: i32 = o.get(3..5)?.parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(offset_secs).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(time::UtcOffset::UTC),
    )
}

/// The instant and change counter of an `entryCSN`.
pub(crate) fn parse_csn(csn: &str) -> Option<(OffsetDateTime, u32)> {
    let mut parts = csn.split('#');
    let t = parse_generalized_time(parts.next()?)?;
    let count = u32::from_str_radix(parts.next()?, 16).ok()?;
    Some((t, count))
}

/// Microseconds since 2000-01-01, scaled by 4096, plus a counter: the version scale.
fn scaled(t: OffsetDateTime, count: u32) -> Option<u64> {
    let secs = t.unix_timestamp().checked_sub(EPOCH_2000)?;
    let micros = u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(u64::from(t.microsecond()))?;
    micros
        .checked_mul(4096)?
        .checked_add(u64::from(count.min(4095)))
}

/// The id of an entry, in its canonical (lower-case) form.
pub(crate) fn entry_id(dir: &DirectoryMap, e: &Entry) -> Option<String> {
    match dir.id {
        IdSource::EntryUuid => e.first("entryUUID").map(str::to_ascii_lowercase),
        IdSource::ObjectGuid => {
            if let Some(b) = e.bin.get("objectguid").and_then(|v| v.first()) {
                return guid_string(b);
            }
            // 16 random bytes are occasionally valid UTF-8, then ldap3 reports them as text.
            e.first("objectGUID")
                .and_then(|s| guid_string(s.as_bytes()))
        }
    }
}

/// Metadata derived from the directory alone (no lossless counter).
pub(crate) fn derived_meta(
    dir: &DirectoryMap,
    e: &Entry,
) -> Option<(OffsetDateTime, OffsetDateTime, Version)> {
    let created = e.first(&dir.created_attr).and_then(parse_generalized_time);
    let modified = e.first(&dir.modified_attr).and_then(parse_generalized_time);
    let csn = e.first("entryCSN").and_then(parse_csn);
    let version = match dir.version {
        VersionSource::EntryCsn => csn.and_then(|(t, c)| scaled(t, c)),
        VersionSource::UsnChanged => e.first("uSNChanged").and_then(|v| v.trim().parse().ok()),
        VersionSource::ModifyTimestamp => modified.and_then(|t| scaled(t, 0)),
    }?;
    let last_modified = match (dir.version, csn) {
        (VersionSource::EntryCsn, Some((t, _))) => t,
        _ => modified.or(created)?,
    };
    let created = created.unwrap_or(last_modified);
    Some((created, last_modified.max(created), Version(version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_parses_fractions_and_offsets() {
        let t = parse_generalized_time("20240102030405.123456Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_704_164_645);
        assert_eq!(t.microsecond(), 123_456);
        let ad = parse_generalized_time("20240102030405.0Z").unwrap();
        assert_eq!(ad.unix_timestamp(), 1_704_164_645);
        let off = parse_generalized_time("20240102050405+0200").unwrap();
        assert_eq!(off.unix_timestamp(), 1_704_164_645);
        assert!(parse_generalized_time("2024010203").is_none());
        assert!(parse_generalized_time("20241302030405Z").is_none());
    }

    #[test]
    fn csn_versions_increase_with_time_and_counter() {
        let a = parse_csn("20261128145634.934372Z#000000#000#000000").unwrap();
        let b = parse_csn("20261128145634.934372Z#000001#000#000000").unwrap();
        let c = parse_csn("20261128145634.934373Z#000000#000#000000").unwrap();
        let (va, vb, vc) = (
            scaled(a.0, a.1).unwrap(),
            scaled(b.0, b.1).unwrap(),
            scaled(c.0, c.1).unwrap(),
        );
        assert!(va < vb && vb < vc);
    }
}
