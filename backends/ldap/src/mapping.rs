//! The checked mapping between SCIM resources and LDAP entries, built from the configuration
//! and its preset, and the two conversions: entry → SCIM attributes and SCIM attributes →
//! the LDAP attribute values an entry should hold.
//!
//! Conversions are pure: anything that needs the directory (DN ↔ id of references, members)
//! is resolved by the caller and passed in, so these functions are unit-tested without slapd.

use crate::config::{
    ActiveConfig, AttributeMapping, ConfigError, DeleteConfig, IdSource, LdapConfig, Matching,
    ObjectConfig, PasswordConfig, Preset, SearchScope, VersionSource,
};
use scimd_core::AttrPath;
use scimd_core::schema::{AttrType, ResourceKind, ResourceTypeDef, SchemaRegistry};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The SCIM side of one attribute mapping, resolved against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScimTarget {
    /// The extension URN the attribute lives under (`None` for core attributes).
    pub ext: Option<String>,
    /// The canonical top-level attribute name.
    pub name: String,
    /// The canonical sub-attribute name.
    pub sub: Option<String>,
    /// `emails[type eq "work"]`: only elements of this type.
    pub type_eq: Option<String>,
    /// Whether the top-level attribute is multi-valued (elements are objects in an array).
    pub multi_valued: bool,
    /// The type of the value the mapping stores (the sub-attribute's type when there is one).
    pub value_type: AttrType,
}

impl ScimTarget {
    /// The canonical path without the type selector (`emails.value`).
    pub fn path(&self) -> AttrPath {
        AttrPath {
            urn: self.ext.clone(),
            name: self.name.clone(),
            sub: self.sub.clone(),
        }
    }
}

/// One checked attribute mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrMap {
    /// The SCIM side.
    pub scim: ScimTarget,
    /// The LDAP attribute, as configured.
    pub ldap: String,
    /// Lower-cased `ldap`, the key entries are looked up by.
    pub key: String,
    /// Store every matching value.
    pub multi: bool,
    /// Written when the SCIM side is empty; see [`AttributeMapping::fallback`].
    pub fallback: Option<String>,
    /// The LDAP value is a DN and the SCIM value an id.
    pub reference: bool,
    /// The LDAP attribute only holds ASCII.
    pub ascii_only: bool,
    /// The assertions the LDAP attribute supports.
    pub matching: Matching,
}

/// The mapping of one resource type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectMap {
    /// The resource type.
    pub kind: ResourceKind,
    /// The base DN template (may contain `{source}`).
    pub base_dn: String,
    /// Search scope.
    pub scope: SearchScope,
    /// Object classes written on create.
    pub object_classes: Vec<String>,
    /// The object class that selects entries of this type.
    pub select_class: String,
    /// The naming attribute (lower-cased key and configured spelling).
    pub rdn_attr: String,
    /// The attribute mappings.
    pub attrs: Vec<AttrMap>,
    /// How `active` is stored (users).
    pub active: Option<ActiveConfig>,
    /// How `password` is written (users).
    pub password: PasswordConfig,
    /// The member DN attribute (groups).
    pub member_attr: Option<String>,
    /// The placeholder member of empty groups.
    pub empty_member: Option<String>,
    /// The attribute listing a user's groups.
    pub member_of: Option<String>,
    /// What DELETE does.
    pub delete: DeleteConfig,
}

/// Directory-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectoryMap {
    pub id: IdSource,
    pub version: VersionSource,
    pub dn_attr: String,
    pub created_attr: String,
    pub modified_attr: String,
    pub assertion: Option<bool>,
    pub transactions: bool,
}

impl DirectoryMap {
    /// The id attribute's name.
    pub fn id_attr(&self) -> &'static str {
        match self.id {
            IdSource::EntryUuid => "entryUUID",
            IdSource::ObjectGuid => "objectGUID",
        }
    }
    /// The version attribute's name.
    pub fn version_attr(&self) -> &str {
        match self.version {
            VersionSource::EntryCsn => "entryCSN",
            VersionSource::UsnChanged => "uSNChanged",
            VersionSource::ModifyTimestamp => &self.modified_attr,
        }
    }
}

/// The whole checked mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapping {
    pub dir: DirectoryMap,
    pub users: ObjectMap,
    pub groups: ObjectMap,
}

impl Mapping {
    /// The mapping of a resource type.
    pub fn object(&self, kind: ResourceKind) -> &ObjectMap {
        match kind {
            ResourceKind::User => &self.users,
            ResourceKind::Group => &self.groups,
        }
    }
}

fn am(scim: &str, ldap: &str) -> AttributeMapping {
    AttributeMapping {
        scim: scim.into(),
        ldap: ldap.into(),
        multi: false,
        fallback: None,
        reference: false,
        ascii_only: false,
        matching: Matching::Full,
    }
}

fn matching(mut m: AttributeMapping, level: Matching) -> AttributeMapping {
    m.matching = level;
    m
}

fn ascii(mut m: AttributeMapping) -> AttributeMapping {
    m.ascii_only = true;
    m
}

fn multi(mut m: AttributeMapping) -> AttributeMapping {
    m.multi = true;
    m
}

fn fallback(mut m: AttributeMapping, f: &str) -> AttributeMapping {
    m.fallback = Some(f.into());
    m
}

fn reference(mut m: AttributeMapping) -> AttributeMapping {
    m.reference = true;
    m
}

const ENTERPRISE: &str = scimd_core::schema::ENTERPRISE_USER;

/// The preset's user mapping (before overrides).
fn preset_users(preset: Preset, base_dn: &str) -> (ObjectConfig, Vec<AttributeMapping>) {
    let ent = |a: &str| format!("{ENTERPRISE}:{a}");
    match preset {
        Preset::Openldap => (
            ObjectConfig {
                base_dn: Some(format!("ou=people,{base_dn}")),
                scope: Some(SearchScope::One),
                object_classes: Some(vec![
                    "top".into(),
                    "person".into(),
                    "organizationalPerson".into(),
                    "inetOrgPerson".into(),
                ]),
                rdn_attribute: Some("uid".into()),
                active: Some(ActiveConfig::LockAttribute {
                    attribute: "pwdAccountLockedTime".into(),
                    value: "000001010000Z".into(),
                }),
                password: Some(PasswordConfig::Attribute {
                    attribute: "userPassword".into(),
                }),
                member_of_attribute: Some("memberOf".into()),
                ..ObjectConfig::default()
            },
            vec![
                am("userName", "uid"),
                fallback(am("name.formatted", "cn"), "{userName}"),
                fallback(am("name.familyName", "sn"), "{userName}"),
                am("name.givenName", "givenName"),
                am("displayName", "displayName"),
                am("title", "title"),
                am("userType", "employeeType"),
                am("preferredLanguage", "preferredLanguage"),
                matching(am("profileUrl", "labeledURI"), Matching::Equality),
                ascii(multi(am("emails[type eq \"work\"].value", "mail"))),
                multi(am(
                    "phoneNumbers[type eq \"work\"].value",
                    "telephoneNumber",
                )),
                multi(am("phoneNumbers[type eq \"mobile\"].value", "mobile")),
                multi(am("phoneNumbers[type eq \"home\"].value", "homePhone")),
                matching(
                    multi(am(
                        "phoneNumbers[type eq \"fax\"].value",
                        "facsimileTelephoneNumber",
                    )),
                    Matching::Presence,
                ),
                multi(am("phoneNumbers[type eq \"pager\"].value", "pager")),
                am("addresses[type eq \"work\"].streetAddress", "street"),
                am("addresses[type eq \"work\"].locality", "l"),
                am("addresses[type eq \"work\"].region", "st"),
                am("addresses[type eq \"work\"].postalCode", "postalCode"),
                am(&ent("employeeNumber"), "employeeNumber"),
                am(&ent("department"), "departmentNumber"),
                am(&ent("organization"), "o"),
                reference(am(&ent("manager.value"), "manager")),
            ],
        ),
        Preset::ActiveDirectory => (
            ObjectConfig {
                base_dn: Some(format!("cn=Users,{base_dn}")),
                scope: Some(SearchScope::One),
                object_classes: Some(vec![
                    "top".into(),
                    "person".into(),
                    "organizationalPerson".into(),
                    "user".into(),
                ]),
                rdn_attribute: Some("cn".into()),
                active: Some(ActiveConfig::Bitmask {
                    attribute: "userAccountControl".into(),
                    bit: 2,
                    initial: 512,
                }),
                password: Some(PasswordConfig::UnicodePwd),
                member_of_attribute: Some("memberOf".into()),
                ..ObjectConfig::default()
            },
            vec![
                am("userName", "sAMAccountName"),
                am("userName", "cn"),
                am("name.givenName", "givenName"),
                am("name.familyName", "sn"),
                am("displayName", "displayName"),
                am("title", "title"),
                am("emails[type eq \"work\"].value", "mail"),
                am("phoneNumbers[type eq \"work\"].value", "telephoneNumber"),
                am("phoneNumbers[type eq \"mobile\"].value", "mobile"),
                am("addresses[type eq \"work\"].streetAddress", "streetAddress"),
                am("addresses[type eq \"work\"].locality", "l"),
                am("addresses[type eq \"work\"].region", "st"),
                am("addresses[type eq \"work\"].postalCode", "postalCode"),
                am("addresses[type eq \"work\"].country", "c"),
                am(&ent("employeeNumber"), "employeeNumber"),
                am(&ent("department"), "department"),
                am(&ent("organization"), "company"),
                am(&ent("division"), "division"),
                reference(am(&ent("manager.value"), "manager")),
            ],
        ),
    }
}

/// The preset's group mapping (before overrides).
fn preset_groups(preset: Preset, base_dn: &str) -> (ObjectConfig, Vec<AttributeMapping>) {
    match preset {
        Preset::Openldap => (
            ObjectConfig {
                base_dn: Some(format!("ou=groups,{base_dn}")),
                scope: Some(SearchScope::One),
                object_classes: Some(vec!["top".into(), "groupOfNames".into()]),
                rdn_attribute: Some("cn".into()),
                member_attribute: Some("member".into()),
                empty_member: Some(String::new()),
                ..ObjectConfig::default()
            },
            vec![am("displayName", "cn")],
        ),
        Preset::ActiveDirectory => (
            ObjectConfig {
                base_dn: Some(format!("cn=Users,{base_dn}")),
                scope: Some(SearchScope::One),
                object_classes: Some(vec!["top".into(), "group".into()]),
                rdn_attribute: Some("cn".into()),
                member_attribute: Some("member".into()),
                ..ObjectConfig::default()
            },
            vec![am("displayName", "cn"), am("displayName", "sAMAccountName")],
        ),
    }
}

fn merge_object(
    kind: ResourceKind,
    preset: (ObjectConfig, Vec<AttributeMapping>),
    over: &ObjectConfig,
    rt: &ResourceTypeDef,
) -> Result<ObjectMap, ConfigError> {
    let (p, preset_attrs) = preset;
    let mut list = over.attributes.clone().unwrap_or(preset_attrs);
    for extra in &over.extra_attributes {
        list.retain(|m| !m.scim.eq_ignore_ascii_case(&extra.scim));
    }
    list.extend(over.extra_attributes.iter().cloned());
    list.retain(|m| {
        !over
            .unmapped
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&m.scim))
    });
    let attrs = list
        .iter()
        .map(|m| compile_attr(m, rt))
        .collect::<Result<Vec<_>, _>>()?;
    let pick = |o: &Option<String>, p: &Option<String>| o.clone().or_else(|| p.clone());
    let base_dn = pick(&over.base_dn, &p.base_dn)
        .ok_or_else(|| ConfigError(format!("{}: base_dn is required", kind.endpoint())))?;
    let object_classes = over
        .object_classes
        .clone()
        .or(p.object_classes)
        .unwrap_or_default();
    let select_class = object_classes
        .last()
        .cloned()
        .ok_or_else(|| ConfigError(format!("{}: object_classes is empty", kind.endpoint())))?;
    let rdn_attr = pick(&over.rdn_attribute, &p.rdn_attribute)
        .ok_or_else(|| ConfigError(format!("{}: rdn_attribute is required", kind.endpoint())))?;
    if !attrs.iter().any(|a| a.key == rdn_attr.to_ascii_lowercase()) {
        return Err(ConfigError(format!(
            "{}: the naming attribute {rdn_attr} has no mapping",
            kind.endpoint()
        )));
    }
    let is_user = kind == ResourceKind::User;
    if !is_user
        && (over.active.is_some() || over.password.is_some() || over.member_of_attribute.is_some())
    {
        return Err(ConfigError(
            "groups: active, password and member_of_attribute apply to users only".into(),
        ));
    }
    if is_user && (over.member_attribute.is_some() || over.empty_member.is_some()) {
        return Err(ConfigError(
            "users: member_attribute and empty_member apply to groups only".into(),
        ));
    }
    let member_attr = pick(&over.member_attribute, &p.member_attribute);
    if !is_user && member_attr.is_none() {
        return Err(ConfigError("groups: member_attribute is required".into()));
    }
    Ok(ObjectMap {
        kind,
        base_dn,
        scope: over.scope.or(p.scope).unwrap_or(SearchScope::One),
        object_classes,
        select_class,
        rdn_attr,
        attrs,
        active: over.active.clone().or(p.active),
        password: over
            .password
            .clone()
            .or(p.password)
            .unwrap_or(PasswordConfig::None),
        member_attr,
        empty_member: pick(&over.empty_member, &p.empty_member),
        member_of: pick(&over.member_of_attribute, &p.member_of_attribute),
        delete: over.delete.clone().or(p.delete).unwrap_or_default(),
    })
}

/// Parses and resolves the SCIM side of a mapping.
fn compile_attr(m: &AttributeMapping, rt: &ResourceTypeDef) -> Result<AttrMap, ConfigError> {
    let err = |what: &str| {
        ConfigError(format!(
            "{} mapping {:?} → {}: {what}",
            rt.kind.endpoint(),
            m.scim,
            m.ldap
        ))
    };
    let (path_text, type_eq) = match m.scim.split_once('[') {
        None => (m.scim.clone(), None),
        Some((attr, rest)) => {
            let (inner, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            let value = parse_type_selector(inner)
                .ok_or_else(|| err("only [type eq \"...\"] selectors are supported"))?;
            (format!("{attr}{after}"), Some(value))
        }
    };
    let path = AttrPath::parse(&path_text).map_err(|e| err(&e.detail))?;
    let resolved = rt
        .resolve(&path)
        .ok_or_else(|| err("no such attribute in the schema"))?;
    let attr = resolved.attr;
    if attr.name == "id" || attr.name == "meta" || attr.name == "groups" || attr.name == "members" {
        return Err(err("this attribute is maintained by the backend itself"));
    }
    if attr.name == "active" || attr.name == "password" {
        return Err(err(
            "use the `active` / `password` settings for this attribute",
        ));
    }
    if attr.attr_type == AttrType::Complex && resolved.sub.is_none() {
        return Err(err(
            "a complex attribute needs a sub-attribute (e.g. emails.value)",
        ));
    }
    if type_eq.is_some() && !(attr.multi_valued && attr.sub_attribute("type").is_some()) {
        return Err(err(
            "a type selector needs a multi-valued attribute with a type",
        ));
    }
    if m.multi && !attr.multi_valued {
        return Err(err("multi applies to multi-valued attributes only"));
    }
    if !is_attr_name(&m.ldap) {
        return Err(err("invalid LDAP attribute name"));
    }
    let canonical = resolved.canonical_path();
    Ok(AttrMap {
        scim: ScimTarget {
            ext: canonical.urn,
            name: canonical.name,
            sub: canonical.sub,
            type_eq,
            multi_valued: attr.multi_valued,
            value_type: resolved.target().attr_type,
        },
        ldap: m.ldap.clone(),
        key: m.ldap.to_ascii_lowercase(),
        multi: m.multi,
        fallback: m.fallback.clone(),
        reference: m.reference,
        ascii_only: m.ascii_only,
        matching: m.matching,
    })
}

/// Whether `s` is an LDAP attribute description (RFC 4512 `descr` or numeric OID, with
/// options): names go into filters and controls unescaped, so nothing else may pass.
pub(crate) fn is_attr_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.')
}

fn check_name(what: &str, s: &str) -> Result<(), ConfigError> {
    if is_attr_name(s) {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{what} {s:?} is not a valid LDAP attribute or class name"
        )))
    }
}

/// Every configured LDAP name of a type's mapping.
fn check_names(o: &ObjectMap) -> Result<(), ConfigError> {
    check_name("rdn_attribute", &o.rdn_attr)?;
    for c in &o.object_classes {
        check_name("object class", c)?;
    }
    if let Some(a) = &o.active {
        check_name("active attribute", active_attr(a))?;
    }
    if let PasswordConfig::Attribute { attribute } = &o.password {
        check_name("password attribute", attribute)?;
    }
    for a in o.member_attr.iter().chain(o.member_of.iter()) {
        check_name("member attribute", a)?;
    }
    Ok(())
}

/// `type eq "work"` → `work`.
fn parse_type_selector(s: &str) -> Option<String> {
    let mut parts = s.trim().splitn(3, char::is_whitespace);
    let attr = parts.next()?;
    let op = parts.next()?;
    let value = parts.next()?.trim();
    if !attr.eq_ignore_ascii_case("type") || !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let v = value.strip_prefix('"')?.strip_suffix('"')?;
    (!v.is_empty() && !v.contains('"')).then(|| v.to_string())
}

impl LdapConfig {
    /// Builds and checks the mapping: the preset with every override applied, each SCIM path
    /// resolved against `registry`.
    pub(crate) fn build_mapping(&self, registry: &SchemaRegistry) -> Result<Mapping, ConfigError> {
        let users = merge_object(
            ResourceKind::User,
            preset_users(self.preset, &self.base_dn),
            &self.users,
            registry.resource_type(ResourceKind::User),
        )?;
        let groups = merge_object(
            ResourceKind::Group,
            preset_groups(self.preset, &self.base_dn),
            &self.groups,
            registry.resource_type(ResourceKind::Group),
        )?;
        let d = &self.directory;
        let dir = match self.preset {
            Preset::Openldap => DirectoryMap {
                id: d.id.unwrap_or(IdSource::EntryUuid),
                version: d.version.unwrap_or(VersionSource::EntryCsn),
                dn_attr: d.dn_attribute.clone().unwrap_or_else(|| "entryDN".into()),
                created_attr: d
                    .created_attribute
                    .clone()
                    .unwrap_or_else(|| "createTimestamp".into()),
                modified_attr: d
                    .modified_attribute
                    .clone()
                    .unwrap_or_else(|| "modifyTimestamp".into()),
                assertion: d.assertion_control,
                transactions: d.transactions.unwrap_or(false),
            },
            Preset::ActiveDirectory => DirectoryMap {
                id: d.id.unwrap_or(IdSource::ObjectGuid),
                version: d.version.unwrap_or(VersionSource::UsnChanged),
                dn_attr: d
                    .dn_attribute
                    .clone()
                    .unwrap_or_else(|| "distinguishedName".into()),
                created_attr: d
                    .created_attribute
                    .clone()
                    .unwrap_or_else(|| "whenCreated".into()),
                modified_attr: d
                    .modified_attribute
                    .clone()
                    .unwrap_or_else(|| "whenChanged".into()),
                assertion: d.assertion_control,
                transactions: d.transactions.unwrap_or(false),
            },
        };
        check_names(&users)?;
        check_names(&groups)?;
        for a in [&dir.dn_attr, &dir.created_attr, &dir.modified_attr] {
            check_name("directory attribute", a)?;
        }
        if self.pool_size == 0 || self.page_size == 0 || self.max_scan == 0 {
            return Err(ConfigError(
                "pool_size, page_size and max_scan must be positive".into(),
            ));
        }
        Ok(Mapping { dir, users, groups })
    }
}

impl LdapConfig {
    /// The schemas a source served by this backend hosts: `registry` narrowed to what the
    /// mapping (or lossless mode) can store — see [`crate::LdapBackend::storable_paths`]. Fails
    /// like [`crate::LdapBackend::new`] when the mapping is invalid.
    pub fn hosted_schemas(
        &self,
        registry: &Arc<SchemaRegistry>,
    ) -> Result<Arc<SchemaRegistry>, ConfigError> {
        self.build_mapping(registry)?
            .hosted_schemas(self.lossless, registry)
    }
}

impl Mapping {
    /// See [`crate::LdapBackend::storable_paths`].
    pub fn storable_paths(
        &self,
        lossless: bool,
        registry: &SchemaRegistry,
        kind: ResourceKind,
    ) -> Option<Vec<AttrPath>> {
        let rt = registry.resource_type(kind);
        let obj = self.object(kind);
        if !lossless {
            return Some(obj.storable_paths(rt));
        }
        if kind != ResourceKind::User || obj.password != PasswordConfig::None {
            return None;
        }
        let top = |urn: Option<&str>, name: &str| AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub: None,
        };
        let core = rt.schema.attributes.iter().map(|a| top(None, &a.name));
        let ext = rt.extensions.iter().flat_map(|e| {
            e.schema
                .attributes
                .iter()
                .map(|a| top(Some(&e.schema.id), &a.name))
        });
        let common = rt.external_id.then(|| top(None, "externalId"));
        Some(
            core.chain(ext)
                .chain(common)
                .filter(|p| p.name != "password")
                .collect(),
        )
    }

    /// See [`crate::LdapBackend::hosted_schemas`].
    pub fn hosted_schemas(
        &self,
        lossless: bool,
        registry: &Arc<SchemaRegistry>,
    ) -> Result<Arc<SchemaRegistry>, ConfigError> {
        let mut out = registry.clone();
        for kind in ResourceKind::ALL {
            if let Some(paths) = self.storable_paths(lossless, registry, kind) {
                out = Arc::new(
                    out.narrowed(kind, &paths)
                        .map_err(|e| ConfigError(e.detail))?,
                );
            }
        }
        Ok(out)
    }
}

/// An entry as read: DN and attribute values keyed by lower-cased attribute name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
    pub bin: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// Every value of an attribute (by any spelling).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// The first value.
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.values(attr).first().map(String::as_str)
    }
    /// Builds from an ldap3 search entry.
    pub fn from_search(e: ldap3::SearchEntry) -> Entry {
        Entry {
            dn: e.dn,
            attrs: e
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            bin: e
                .bin_attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }
}

/// The container a mapping's value lives in: the resource's attributes or an extension object.
fn container<'a>(attrs: &'a Map<String, Value>, t: &ScimTarget) -> Option<&'a Map<String, Value>> {
    match &t.ext {
        None => Some(attrs),
        Some(urn) => attrs.get(urn)?.as_object(),
    }
}

fn container_mut<'a>(
    attrs: &'a mut Map<String, Value>,
    t: &ScimTarget,
) -> Option<&'a mut Map<String, Value>> {
    match &t.ext {
        None => Some(attrs),
        Some(urn) => {
            let slot = attrs
                .entry(urn.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut()
        }
    }
}

/// Converts an LDAP string value to the SCIM JSON type of the mapping.
fn ldap_to_json(t: AttrType, v: &str) -> Option<Value> {
    match t {
        AttrType::Boolean => match v.to_ascii_uppercase().as_str() {
            "TRUE" => Some(Value::Bool(true)),
            "FALSE" => Some(Value::Bool(false)),
            _ => None,
        },
        AttrType::Integer => v.trim().parse::<i64>().ok().map(Value::from),
        AttrType::Decimal => v
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        _ => Some(Value::String(v.to_string())),
    }
}

/// Converts a SCIM JSON value to its LDAP string form; `None` for values of the wrong shape.
fn json_to_ldap(t: AttrType, v: &Value) -> Option<String> {
    match (t, v) {
        (AttrType::Boolean, Value::Bool(b)) => Some(if *b { "TRUE" } else { "FALSE" }.into()),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => Some(n.to_string()),
        (_, Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Renders a fallback template: `{path}` is replaced by the first string value at that path.
pub(crate) fn render_template(template: &str, attrs: &Map<String, Value>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let path = &after[..end];
        let value = match path.split_once('.') {
            Some((a, s)) => attrs.get(a).and_then(|v| v.get(s)),
            None => attrs.get(path),
        }?;
        out.push_str(value.as_str()?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// Normalizes a DN for comparison: lower case, no spaces around separators. Enough to match
/// DNs the directory itself produced against each other.
pub(crate) fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.chars().peekable();
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if escaped {
            out.extend(c.to_lowercase());
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                escaped = true;
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out.trim().to_string()
}

/// Maps resolved DNs (normalized) to ids, for reference attributes.
pub(crate) type DnIds = HashMap<String, String>;

impl ObjectMap {
    /// The SCIM paths entries of this type can hold without lossless mode — what the schema
    /// served for the type is narrowed to ([`SchemaRegistry::narrowed`]):
    /// - every mapped path (`name.givenName`, `emails.value`, `externalId` when mapped);
    /// - of a mapped multi-valued attribute, `type` when a mapping selects elements by it (the
    ///   LDAP attribute a value is read from gives its type back) and `primary` (it picks the
    ///   value a single-valued LDAP attribute keeps and orders the others; it is not read
    ///   back), where the attribute has them;
    /// - `active` and `password` when configured;
    /// - `groups` of users and `members` of groups, which the directory relates.
    pub fn storable_paths(&self, rt: &ResourceTypeDef) -> Vec<AttrPath> {
        let mut out: Vec<AttrPath> = Vec::new();
        let mut push = |p: AttrPath| {
            if rt.resolve(&p).is_some() && !out.contains(&p) {
                out.push(p);
            }
        };
        for m in &self.attrs {
            push(m.scim.path());
            if m.scim.multi_valued {
                let element = |sub: &str| AttrPath {
                    sub: Some(sub.to_string()),
                    ..m.scim.path()
                };
                if self.attrs.iter().any(|o| {
                    o.scim.name == m.scim.name
                        && o.scim.ext == m.scim.ext
                        && o.scim.type_eq.is_some()
                }) {
                    push(element("type"));
                }
                push(element("primary"));
            }
        }
        let top = |name: &str| AttrPath {
            urn: None,
            name: name.to_string(),
            sub: None,
        };
        match self.kind {
            ResourceKind::User => {
                if self.active.is_some() {
                    push(top("active"));
                }
                if self.password != PasswordConfig::None {
                    push(top("password"));
                }
                push(top("groups"));
            }
            ResourceKind::Group => {
                if self.member_attr.is_some() {
                    push(top("members"));
                }
            }
        }
        out
    }

    /// The LDAP attributes to request for this type (besides the operational ones).
    pub fn read_attrs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |a: &str| {
            if !out.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                out.push(a.to_string());
            }
        };
        push("objectClass");
        for a in &self.attrs {
            push(&a.ldap);
        }
        if let Some(active) = &self.active {
            push(active_attr(active));
        }
        if let Some(m) = &self.member_of {
            push(m);
        }
        out
    }

    /// The reference DNs an entry holds (to resolve before [`ObjectMap::to_scim`]).
    pub fn reference_dns(&self, e: &Entry) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|a| a.reference)
            .flat_map(|a| e.values(&a.ldap).iter().cloned())
            .collect()
    }

    /// The SCIM attributes stored in an entry (without `id`, `meta`, `members`, `groups`).
    pub fn to_scim(&self, e: &Entry, refs: &DnIds) -> Map<String, Value> {
        let mut attrs = Map::new();
        // Fallback-bearing mappings go last so their templates can see the other attributes.
        let (plain, with_fallback): (Vec<&AttrMap>, Vec<&AttrMap>) =
            self.attrs.iter().partition(|a| a.fallback.is_none());
        let mut set: Vec<(ScimTarget, bool)> = Vec::new();
        for m in plain.into_iter().chain(with_fallback) {
            let mut values: Vec<Value> = Vec::new();
            let hidden = m
                .fallback
                .as_deref()
                .and_then(|f| render_template(f, &attrs));
            for raw in e.values(&m.ldap) {
                if hidden.as_deref() == Some(raw.as_str()) {
                    continue;
                }
                let v = if m.reference {
                    refs.get(&normalize_dn(raw))
                        .map(|id| Value::String(id.clone()))
                } else {
                    ldap_to_json(m.scim.value_type, raw)
                };
                if let Some(v) = v {
                    values.push(v);
                }
                if !m.multi {
                    break;
                }
            }
            if values.is_empty() {
                continue;
            }
            // The first mapping of a single-valued target wins (AD maps userName twice).
            if !m.scim.multi_valued && set.iter().any(|(t, _)| t.path() == m.scim.path()) {
                continue;
            }
            set.push((m.scim.clone(), true));
            place(&mut attrs, m, values);
        }
        if let Some(active) = &self.active {
            attrs.insert("active".into(), Value::Bool(read_active(active, e)));
        }
        attrs
    }

    /// The LDAP values the mapped attributes should hold for `attrs`: LDAP attribute (as
    /// configured) → values, with an empty list for mapped attributes that should be absent.
    /// `refs` maps referenced ids to DNs; unknown ids are reported as the error.
    pub fn to_ldap(
        &self,
        attrs: &Map<String, Value>,
        refs: &HashMap<String, String>,
        lenient: bool,
    ) -> Result<BTreeMap<String, (String, Vec<String>)>, String> {
        let mut out: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for m in &self.attrs {
            out.entry(m.key.clone())
                .or_insert_with(|| (m.ldap.clone(), Vec::new()));
        }
        for m in &self.attrs {
            let mut values = self.values_for(m, attrs);
            if m.reference {
                let mut dns = Vec::with_capacity(values.len());
                for id in values {
                    match refs.get(&id) {
                        Some(dn) => dns.push(dn.clone()),
                        None if lenient => {}
                        None => return Err(id),
                    }
                }
                values = dns;
            }
            if lenient && m.ascii_only {
                values.retain(|v| v.is_ascii());
            }
            if values.is_empty()
                && let Some(f) = &m.fallback
                && let Some(v) = render_template(f, attrs)
            {
                values.push(v);
            }
            if let Some((_, slot)) = out.get_mut(&m.key) {
                for v in values {
                    if !slot.contains(&v) {
                        slot.push(v);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The ids referenced by `attrs` through reference mappings.
    pub fn referenced_ids(&self, attrs: &Map<String, Value>) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|m| m.reference)
            .flat_map(|m| self.values_for(m, attrs))
            .collect()
    }

    /// The string values a mapping takes from SCIM attributes, primary first.
    fn values_for(&self, m: &AttrMap, attrs: &Map<String, Value>) -> Vec<String> {
        let Some(c) = container(attrs, &m.scim) else {
            return Vec::new();
        };
        let Some(top) = c.get(&m.scim.name) else {
            return Vec::new();
        };
        let t = m.scim.value_type;
        if !m.scim.multi_valued {
            let v = match &m.scim.sub {
                Some(sub) => top.get(sub),
                None => Some(top),
            };
            return v.and_then(|v| json_to_ldap(t, v)).into_iter().collect();
        }
        let Some(elements) = top.as_array() else {
            return Vec::new();
        };
        let first_typed = self
            .attrs
            .iter()
            .find(|o| {
                o.scim.name == m.scim.name && o.scim.ext == m.scim.ext && o.scim.type_eq.is_some()
            })
            .map(|o| o.scim.type_eq.clone());
        let selected = elements.iter().filter(|el| match &m.scim.type_eq {
            None => true,
            Some(want) => match el.get("type").and_then(Value::as_str) {
                Some(ty) => ty.eq_ignore_ascii_case(want),
                // Elements without a type are stored by the attribute's first typed mapping.
                None => first_typed.as_ref() == Some(&m.scim.type_eq),
            },
        });
        let mut ordered: Vec<&Value> = selected.collect();
        ordered.sort_by_key(|el| el.get("primary") != Some(&Value::Bool(true)));
        let sub = m.scim.sub.as_deref().unwrap_or("value");
        let mut out = Vec::new();
        for el in ordered {
            if let Some(v) = el.get(sub).and_then(|v| json_to_ldap(t, v))
                && !out.contains(&v)
            {
                out.push(v);
                if !m.multi {
                    break;
                }
            }
        }
        out
    }
}

/// Puts read values into the SCIM attributes.
fn place(attrs: &mut Map<String, Value>, m: &AttrMap, values: Vec<Value>) {
    let Some(c) = container_mut(attrs, &m.scim) else {
        return;
    };
    let t = &m.scim;
    if !t.multi_valued {
        let Some(v) = values.into_iter().next() else {
            return;
        };
        match &t.sub {
            None => {
                c.insert(t.name.clone(), v);
            }
            Some(sub) => {
                let obj = c
                    .entry(t.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(o) = obj {
                    o.insert(sub.clone(), v);
                }
            }
        }
        return;
    }
    let sub = t.sub.clone().unwrap_or_else(|| "value".into());
    let list = c
        .entry(t.name.clone())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = list else {
        return;
    };
    for v in values {
        // Single-valued mappings of one typed element (addresses[type eq "work"].locality,
        // .region, ...) fill one element together.
        let existing = (!m.multi).then(|| {
            list.iter_mut().position(|el| {
                el.get("type").and_then(Value::as_str) == t.type_eq.as_deref()
                    && el.get(&sub).is_none()
            })
        });
        match existing.flatten() {
            Some(i) => {
                if let Some(Value::Object(o)) = list.get_mut(i) {
                    o.insert(sub.clone(), v);
                }
            }
            None => {
                let mut el = Map::new();
                el.insert(sub.clone(), v);
                if let Some(ty) = &t.type_eq {
                    el.insert("type".into(), Value::String(ty.clone()));
                }
                list.push(Value::Object(el));
            }
        }
    }
}

/// The attribute an `active` setting reads and writes.
pub(crate) fn active_attr(a: &ActiveConfig) -> &str {
    match a {
        ActiveConfig::LockAttribute { attribute, .. }
        | ActiveConfig::Flag { attribute, .. }
        | ActiveConfig::Bitmask { attribute, .. } => attribute,
    }
}

/// Whether an entry is active.
pub(crate) fn read_active(a: &ActiveConfig, e: &Entry) -> bool {
    match a {
        ActiveConfig::LockAttribute { attribute, .. } => e.values(attribute).is_empty(),
        ActiveConfig::Flag {
            attribute,
            inactive_value,
        } => !e
            .values(attribute)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(inactive_value)),
        ActiveConfig::Bitmask { attribute, bit, .. } => e
            .first(attribute)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_none_or(|v| v & i64::from(*bit) == 0),
    }
}

/// The values the `active` attribute should hold, given the current entry (for bits and an
/// existing lock to preserve). `None` means: leave it as it is.
pub(crate) fn write_active(
    a: &ActiveConfig,
    active: Option<bool>,
    current: Option<&Entry>,
) -> Option<Vec<String>> {
    match a {
        ActiveConfig::LockAttribute { attribute, value } => {
            let locked_now = current.is_some_and(|e| !e.values(attribute).is_empty());
            match active {
                // An absent `active` means active: a PUT replaces the whole resource.
                Some(true) | None => Some(Vec::new()),
                // Keep an existing lock value (e.g. a ppolicy lockout time) as it is.
                Some(false) if locked_now => None,
                Some(false) => Some(vec![value.clone()]),
            }
        }
        ActiveConfig::Flag { inactive_value, .. } => match active {
            Some(false) => Some(vec![inactive_value.clone()]),
            _ => Some(Vec::new()),
        },
        ActiveConfig::Bitmask {
            attribute,
            bit,
            initial,
        } => {
            let base = current
                .and_then(|e| e.first(attribute))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(i64::from(*initial));
            let bit = i64::from(*bit);
            let v = if active == Some(false) {
                base | bit
            } else {
                base & !bit
            };
            Some(vec![v.to_string()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn openldap() -> Mapping {
        LdapConfig::new("ldap://x", "dc=example,dc=org")
            .build_mapping(&SchemaRegistry::new())
            .unwrap()
    }

    fn entry(pairs: &[(&str, &[&str])]) -> Entry {
        Entry {
            dn: "uid=x,ou=people,dc=example,dc=org".into(),
            attrs: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect(),
            bin: HashMap::new(),
        }
    }

    #[test]
    fn both_presets_compile_against_the_builtin_schemas() {
        let reg = SchemaRegistry::new();
        let m = openldap();
        assert_eq!(m.users.rdn_attr, "uid");
        assert_eq!(m.groups.empty_member.as_deref(), Some(""));
        let mut c = LdapConfig::new("ldaps://ad", "dc=corp,dc=example");
        c.preset = Preset::ActiveDirectory;
        let ad = c.build_mapping(&reg).unwrap();
        assert_eq!(ad.dir.id, IdSource::ObjectGuid);
        assert_eq!(ad.users.password, PasswordConfig::UnicodePwd);
    }

    #[test]
    fn mapping_to_unknown_or_backend_attributes_is_rejected() {
        let reg = SchemaRegistry::new();
        for scim in [
            "bogus",
            "id",
            "groups.value",
            "emails[display eq \"x\"].value",
            "emails",
        ] {
            let mut c = LdapConfig::new("ldap://x", "dc=x");
            c.users.extra_attributes.push(am(scim, "description"));
            assert!(c.build_mapping(&reg).is_err(), "{scim}");
        }
    }

    #[test]
    fn ldap_names_that_could_break_filters_are_rejected() {
        let reg = SchemaRegistry::new();
        let mut c = LdapConfig::new("ldap://x", "dc=x");
        c.directory.modified_attribute = Some("a)(b".into());
        assert!(c.build_mapping(&reg).is_err());
        let mut c = LdapConfig::new("ldap://x", "dc=x");
        c.users.member_of_attribute = Some("memberOf*".into());
        assert!(c.build_mapping(&reg).is_err());
        let mut c = LdapConfig::new("ldap://x", "dc=x");
        c.users.object_classes = Some(vec!["top".into(), "inet Org".into()]);
        assert!(c.build_mapping(&reg).is_err());
    }

    #[test]
    fn entry_converts_to_scim_with_types_sub_attributes_and_hidden_fallbacks() {
        let m = openldap();
        let e = entry(&[
            ("uid", &["bjensen"]),
            ("cn", &["bjensen"]),
            ("sn", &["Jensen"]),
            ("givenName", &["Barbara"]),
            ("mail", &["b@example.com", "bj@example.com"]),
            ("mobile", &["+1 555"]),
            ("l", &["Hollywood"]),
            ("st", &["CA"]),
            ("employeeNumber", &["701984"]),
            ("pwdAccountLockedTime", &["000001010000Z"]),
        ]);
        let a = m.users.to_scim(&e, &DnIds::new());
        assert_eq!(a["userName"], "bjensen");
        // cn equals its fallback (the userName): not a real name.formatted.
        assert_eq!(
            a["name"],
            json!({"familyName": "Jensen", "givenName": "Barbara"})
        );
        assert_eq!(
            a["emails"],
            json!([{"value": "b@example.com", "type": "work"}, {"value": "bj@example.com", "type": "work"}])
        );
        assert_eq!(
            a["phoneNumbers"],
            json!([{"value": "+1 555", "type": "mobile"}])
        );
        assert_eq!(
            a["addresses"],
            json!([{"locality": "Hollywood", "region": "CA", "type": "work"}])
        );
        assert_eq!(a[ENTERPRISE]["employeeNumber"], "701984");
        assert_eq!(a["active"], false);
    }

    #[test]
    fn scim_converts_to_ldap_values_with_fallbacks_and_typed_elements() {
        let m = openldap();
        let attrs = json!({
            "userName": "bjensen",
            "emails": [{"value": "home@x", "type": "home"}, {"value": "w@x", "type": "work"},
                       {"value": "p@x", "type": "work", "primary": true}, {"value": "untyped@x"}],
            "phoneNumbers": [{"value": "1", "type": "fax"}],
        });
        let v = m
            .users
            .to_ldap(attrs.as_object().unwrap(), &HashMap::new(), false)
            .unwrap();
        assert_eq!(v["uid"].1, ["bjensen"]);
        assert_eq!(v["sn"].1, ["bjensen"]);
        assert_eq!(v["cn"].1, ["bjensen"]);
        assert_eq!(v["mail"].1, ["p@x", "w@x", "untyped@x"]);
        assert_eq!(v["facsimiletelephonenumber"].1, ["1"]);
        assert!(v["givenname"].1.is_empty());
    }

    #[test]
    fn unresolved_references_are_reported() {
        let m = openldap();
        let attrs = json!({"userName": "x", ENTERPRISE: {"manager": {"value": "nope"}}});
        let err = m
            .users
            .to_ldap(attrs.as_object().unwrap(), &HashMap::new(), false);
        assert_eq!(err, Err("nope".to_string()));
        let mut refs = HashMap::new();
        refs.insert(
            "boss".to_string(),
            "uid=boss,ou=people,dc=example,dc=org".to_string(),
        );
        let attrs = json!({"userName": "x", ENTERPRISE: {"manager": {"value": "boss"}}});
        let v = m
            .users
            .to_ldap(attrs.as_object().unwrap(), &refs, false)
            .unwrap();
        assert_eq!(v["manager"].1, ["uid=boss,ou=people,dc=example,dc=org"]);
    }

    #[test]
    fn active_bitmask_preserves_other_bits() {
        let a = ActiveConfig::Bitmask {
            attribute: "userAccountControl".into(),
            bit: 2,
            initial: 512,
        };
        assert_eq!(
            write_active(&a, Some(false), None),
            Some(vec!["514".into()])
        );
        let e = entry(&[("userAccountControl", &["66050"])]);
        assert!(!read_active(&a, &e));
        assert_eq!(
            write_active(&a, Some(true), Some(&e)),
            Some(vec!["66048".into()])
        );
    }

    fn storable(m: &ObjectMap) -> Vec<String> {
        let reg = SchemaRegistry::new();
        m.storable_paths(reg.resource_type(m.kind))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_openldap_preset_stores_its_mapped_paths_and_the_relations() {
        let m = openldap();
        let users = storable(&m.users);
        for p in [
            "userName",
            "name.givenName",
            "name.familyName",
            "name.formatted",
            "emails.value",
            "emails.type",
            "emails.primary",
            "phoneNumbers.value",
            "addresses.locality",
            "addresses.type",
            "active",
            "password",
            "groups",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            assert!(users.iter().any(|u| u == p), "{p} missing from {users:?}");
        }
        for p in [
            "externalId",
            "nickName",
            "x509Certificates.value",
            "ims.value",
            "emails.display",
            "name.middleName",
            "addresses.country",
        ] {
            assert!(!users.iter().any(|u| u == p), "{p} in {users:?}");
        }
        assert_eq!(storable(&m.groups), ["displayName", "members"]);
    }

    #[test]
    fn storable_paths_follow_the_configured_mapping() {
        let mut c = LdapConfig::new("ldap://x", "dc=example,dc=org");
        c.users
            .extra_attributes
            .push(am("externalId", "carLicense"));
        c.users.unmapped.push("name.givenName".into());
        c.users.password = Some(PasswordConfig::None);
        let m = c.build_mapping(&SchemaRegistry::new()).unwrap();
        let users = storable(&m.users);
        assert!(users.iter().any(|u| u == "externalId"));
        assert!(!users.iter().any(|u| u == "name.givenName"));
        assert!(!users.iter().any(|u| u == "password"));
        // The narrowed schema hosts exactly that.
        let reg = SchemaRegistry::new()
            .narrowed(
                ResourceKind::User,
                &m.users
                    .storable_paths(SchemaRegistry::new().resource_type(ResourceKind::User)),
            )
            .unwrap();
        let rt = reg.resource_type(ResourceKind::User);
        assert!(rt.external_id);
        let name = rt.schema.attribute("name").unwrap();
        assert!(name.sub_attribute("givenName").is_none());
        assert!(name.sub_attribute("familyName").is_some());
        assert!(rt.schema.attribute("password").is_none());
    }

    #[test]
    fn dns_normalize_case_and_spaces() {
        assert_eq!(
            normalize_dn("UID=Bob , OU=People,dc=Example, dc=org"),
            "uid=bob,ou=people,dc=example,dc=org"
        );
    }
}
