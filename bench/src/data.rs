//! Realistic, deterministic test identities: user `i` of a data set always has the same
//! userName, name, emails, externalId and enterprise attributes, so a later `run` can rebuild
//! any seeded user's body (for PUT) or search for it (by userName or email) from its index.
//!
//! Every data set has a random prefix that appears in each userName's domain, so several data
//! sets (or an older one) can live on one server without uniqueness conflicts.

use rand::Rng;
use serde_json::{Value, json};

/// The User core schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension URN.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The Group core schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The PatchOp message URN.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const GIVEN: &[&str] = &[
    "Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
    "Lena", "Marco", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Carmen", "Dmitri", "Emma", "Felix",
];
// No name is a suffix of another, so an email fragment `<family>.<i>@` matches one user.
const FAMILY: &[&str] = &[
    "Jensen",
    "Okafor",
    "Moreau",
    "Tanaka",
    "Kowalski",
    "Haddad",
    "Lindqvist",
    "Ferreira",
    "Novak",
    "Castillo",
    "Brennan",
    "Yilmaz",
    "Petrov",
    "Mbeki",
    "Schulz",
    "Rossi",
    "Nakamura",
    "Dubois",
    "Ortega",
    "Fischer",
    "Kaur",
    "Andersen",
    "Costa",
    "Weber",
    "Lopez",
    "Ivanova",
    "Hughes",
    "Bauer",
    "Silva",
    "Chen",
    "Park",
    "Murphy",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Support",
    "Operations",
    "Research",
    "Product",
];
const TITLES: &[&str] = &[
    "Software Engineer",
    "Account Executive",
    "Analyst",
    "Manager",
    "Designer",
    "Consultant",
    "Director",
    "Specialist",
    "Coordinator",
    "Architect",
];
const CITIES: &[(&str, &str)] = &[
    ("Berlin", "DE"),
    ("Lisbon", "PT"),
    ("Austin", "US"),
    ("Osaka", "JP"),
    ("Toronto", "CA"),
    ("Nairobi", "KE"),
    ("Melbourne", "AU"),
    ("Lyon", "FR"),
];

/// A 64-bit mix (splitmix64): spreads consecutive indexes over the name lists.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<T: Copy>(list: &[T], x: u64) -> T {
    // Lists are short constants, so the index fits and the list is never empty.
    list[(x % list.len() as u64) as usize]
}

/// A version-4 UUID made of 122 of these 128 bits.
pub fn uuid_v4(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        0x8000 | (b >> 48 & 0x3FFF),
        b & 0xFFFF_FFFF_FFFF
    )
}

/// A fresh random data-set prefix: 6 lower-case letters and digits.
pub fn random_prefix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The identities of one data set.
#[derive(Debug, Clone)]
pub struct Identities {
    prefix: String,
    salt: u64,
}

impl Identities {
    /// The data set with this prefix.
    pub fn new(prefix: &str) -> Identities {
        let salt = prefix.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        });
        Identities {
            prefix: prefix.to_string(),
            salt,
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn names(&self, i: u64) -> (&'static str, &'static str, u64) {
        let h = mix(i ^ self.salt);
        (pick(GIVEN, h), pick(FAMILY, h >> 16), h)
    }

    fn domain(&self) -> String {
        format!("{}.example.com", self.prefix)
    }

    /// User `i`'s userName, also its work email: `anna.jensen.42@<prefix>.example.com`.
    pub fn user_name(&self, i: u64) -> String {
        let (given, family, _) = self.names(i);
        format!(
            "{}.{}.{i}@{}",
            given.to_ascii_lowercase(),
            family.to_ascii_lowercase(),
            self.domain()
        )
    }

    /// A fragment of user `i`'s email that no other user's email contains (for `co`).
    pub fn email_fragment(&self, i: u64) -> String {
        let (_, family, _) = self.names(i);
        format!("{}.{i}@{}", family.to_ascii_lowercase(), self.prefix)
    }

    /// User `i`'s externalId, shaped like the object ids IdPs send.
    pub fn external_id(&self, i: u64) -> String {
        let a = mix(i ^ self.salt ^ 0x5EED);
        uuid_v4(a, mix(a))
    }

    /// The full body of user `i` as an IdP would POST it. `title` overrides the job title (PUT
    /// benchmarks change it on each request).
    pub fn user(&self, i: u64, title: Option<&str>) -> Value {
        let (given, family, h) = self.names(i);
        let user_name = self.user_name(i);
        let (city, country) = pick(CITIES, h >> 40);
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "externalId": self.external_id(i),
            "userName": user_name,
            "name": {
                "formatted": format!("{given} {family}"),
                "familyName": family,
                "givenName": given,
            },
            "displayName": format!("{given} {family}"),
            "title": title.unwrap_or(pick(TITLES, h >> 24)),
            "preferredLanguage": "en-US",
            "active": h % 20 != 0,
            "emails": [{"value": user_name, "type": "work", "primary": true}],
            "phoneNumbers": [{"value": format!("+1 555 {:07}", i % 10_000_000), "type": "work"}],
            "addresses": [{"type": "work", "locality": city, "country": country, "primary": true}],
            ENTERPRISE_SCHEMA: {
                "employeeNumber": i.to_string(),
                "department": pick(DEPARTMENTS, h >> 32),
                "costCenter": format!("CC-{:04}", (h >> 8) % 500),
                "organization": "Example Corp",
            },
        })
    }

    /// Group `j`'s displayName.
    pub fn group_name(&self, j: u64) -> String {
        format!("{} group {j}", self.prefix)
    }

    /// The display name of the big group.
    pub fn big_group_name(&self) -> String {
        format!("{} big group", self.prefix)
    }

    /// A group body with these member ids.
    pub fn group(&self, display_name: &str, external_id: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members
            .iter()
            .map(|id| json!({"value": id, "type": "User"}))
            .collect();
        json!({
            "schemas": [GROUP_SCHEMA],
            "externalId": external_id,
            "displayName": display_name,
            "members": members,
        })
    }
}

/// A PATCH body adding these users to a group (RFC 7644 §3.5.2.1).
pub fn add_members(ids: &[&str]) -> Value {
    let members: Vec<Value> = ids
        .iter()
        .map(|id| json!({"value": id, "type": "User"}))
        .collect();
    json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "add", "path": "members", "value": members}],
    })
}

/// A PATCH body removing these members, one `members[value eq "…"]` operation each (RFC 7644
/// §3.5.2.2), which every SCIM server must understand.
pub fn remove_members(ids: &[&str]) -> Value {
    let ops: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "op": "remove",
                "path": format!("members[value eq {}]", Value::String((*id).to_string())),
            })
        })
        .collect();
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

/// A PATCH body replacing one attribute.
pub fn replace_attribute(path: &str, value: Value) -> Value {
    json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": path, "value": value}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_deterministic_per_prefix_and_index() {
        let a = Identities::new("abc123");
        assert_eq!(a.user(7, None), Identities::new("abc123").user(7, None));
        assert_ne!(a.user_name(7), Identities::new("xyz789").user_name(7));
        assert_ne!(a.external_id(7), a.external_id(8));
        let u = a.user(7, Some("Chief"));
        assert_eq!(u["title"], "Chief");
        assert_eq!(u["emails"][0]["type"], "work");
        assert_eq!(u["emails"][0]["value"], u["userName"]);
        assert_eq!(u[ENTERPRISE_SCHEMA]["employeeNumber"], "7");
        assert!(u[ENTERPRISE_SCHEMA]["department"].is_string());
    }

    #[test]
    fn user_names_are_unique_and_email_fragments_select_one_user() {
        let ids = Identities::new("p0p0p0");
        let names: Vec<String> = (0..5000).map(|i| ids.user_name(i)).collect();
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for i in [0u64, 1, 12, 123, 4999] {
            let frag = ids.email_fragment(i);
            let hits: Vec<&String> = names.iter().filter(|n| n.contains(&frag)).collect();
            assert_eq!(hits, vec![&names[i as usize]], "fragment {frag}");
        }
    }

    #[test]
    fn family_names_are_not_suffixes_of_each_other() {
        for a in FAMILY {
            for b in FAMILY {
                if a != b {
                    assert!(!b.to_lowercase().ends_with(&a.to_lowercase()), "{a} / {b}");
                }
            }
        }
    }

    #[test]
    fn member_removals_use_one_filtered_operation_per_member() {
        let body = remove_members(&["a1", "b\"2"]);
        let ops = body["Operations"].as_array().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0]["path"], "members[value eq \"a1\"]");
        assert_eq!(ops[1]["path"], "members[value eq \"b\\\"2\"]");
    }

    #[test]
    fn prefixes_are_six_url_safe_characters() {
        let p = random_prefix();
        assert_eq!(p.len(), 6);
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
