//! Filter pushdown: a resolved SCIM filter AST becomes one parameterized SQL condition, and a
//! sort becomes an `ORDER BY` with keyset conditions for cursors.
//!
//! The semantics are those of [`scimd_core::filter::matches`]:
//!
//! - a comparison on a path matches when *some* value at that path satisfies it (every value
//!   of a multi-valued attribute, or of a sub-attribute of one, is a candidate);
//! - `ne` is the negation of `eq` (so a missing attribute matches `ne`);
//! - strings of attributes that are not `caseExact` compare case-folded (the stored search
//!   document holds them folded; the comparison value is folded the same way in Rust);
//! - `dateTime` compares as time, numbers numerically, booleans only by (in)equality;
//! - a comparison whose value has the wrong type for the attribute matches nothing;
//! - `pr` needs a non-empty value.
//!
//! Leaves are two-valued: SQL's unknown (a `NULL` from a missing JSON value) would otherwise turn
//! `not (x eq 1)` into "no match" for a resource without `x`. Outside any `not`, `NULL` and false
//! exclude a row alike, so only leaves under a negation are wrapped in `IS TRUE`.

use crate::db::{Dialect, Param, Sql};
use crate::search::{fold, normalize_datetime};
use scimd_core::filter::{CompValue, CompareOp, Filter};
use scimd_core::path::AttrPath;
use scimd_core::query::Sort;
use scimd_core::schema::{AttrType, AttributeDef, Resolved, ResourceTypeDef};
use scimd_core::{BackendError, ResourceKind};

/// The deepest filter translated. The parser already caps nesting far below this; the bound
/// keeps a hand-built AST from recursing without limit.
const MAX_DEPTH: usize = 200;

/// A JSON value inside the search document (or an element of an array in it).
#[derive(Debug, Clone)]
struct JsonLoc {
    /// SQL of the JSON document: `r.search`, or a PostgreSQL array element alias.
    base: String,
    /// SQLite only: SQL of a dynamic path prefix (`eN.fullkey` of a `json_each` row).
    prefix: Option<String>,
    /// Object keys below the base (and prefix).
    path: Vec<String>,
}

impl JsonLoc {
    /// The resource's search copy at a resolved top-level attribute: under the extension URN
    /// for extension attributes.
    fn attribute(res: &Resolved<'_>) -> JsonLoc {
        let mut path = Vec::with_capacity(2);
        if !res.is_core {
            path.push(res.schema.to_string());
        }
        path.push(res.attr.name.clone());
        JsonLoc {
            base: "r.search".into(),
            prefix: None,
            path,
        }
    }

    fn child(&self, key: &str) -> JsonLoc {
        let mut l = self.clone();
        l.path.push(key.to_string());
        l
    }
}

/// Where the candidate values of a leaf come from.
#[derive(Debug, Clone)]
enum Val {
    /// A JSON value of the search document.
    Json(JsonLoc),
    /// A text column or expression (already folded when the attribute is not caseExact);
    /// `NULL` when missing.
    Text(String),
    /// A microsecond timestamp column (`meta.created`, `meta.lastModified`).
    Micros(String),
    /// The version column, compared as its ETag text `W/"n"`.
    Version(String),
    /// A constant text, bound as a parameter.
    Const(String),
    /// A value the store never has (e.g. `meta.location`, which depends on the base URL).
    Missing,
}

/// What the paths of a (sub-)filter are relative to.
#[derive(Debug, Clone)]
enum Scope<'a> {
    /// The resource row `r`.
    Resource,
    /// One value of a complex attribute (an array element or the single object).
    Json { loc: JsonLoc, def: &'a AttributeDef },
    /// The `meta` object of the resource row.
    Meta,
    /// One row of the membership table (a group's member), alias `m`.
    Member { m: String },
    /// One group of a user: membership row `m` joined to the group row `g`.
    UserGroup { m: String, g: String },
}

/// The `WHERE` condition (over the row alias `r`) of a resolved filter and the number of
/// parameters it binds: the translation the store runs for a query, exposed for the
/// micro-benchmarks.
#[doc(hidden)]
pub fn translate_filter(
    dialect: Dialect,
    rt: &ResourceTypeDef,
    source: &str,
    filter: &Filter,
) -> Result<(String, usize), BackendError> {
    let mut sql = Sql::new(dialect);
    Translator::new(dialect, rt, source).condition(filter, &mut sql)?;
    Ok((sql.text, sql.params.len()))
}

/// Translates filters and sorts for one resource type of one source.
pub(crate) struct Translator<'a> {
    dialect: Dialect,
    rt: &'a ResourceTypeDef,
    source: &'a str,
    aliases: usize,
    /// The substring index narrows the rows (see [`Needles`]): substring tests of
    /// `emails.value` then check the candidates one by one instead of scanning the side table.
    narrowed: bool,
}

impl<'a> Translator<'a> {
    pub(crate) fn new(dialect: Dialect, rt: &'a ResourceTypeDef, source: &'a str) -> Self {
        Translator {
            dialect,
            rt,
            source,
            aliases: 0,
            narrowed: false,
        }
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn kind(&self) -> ResourceKind {
        self.rt.kind
    }

    /// Appends the condition of `filter` (over the row alias `r`) to `sql`.
    ///
    /// When the filter implies that some string of the resource contains a needle of
    /// [`MIN_NEEDLE`] characters or more (a `co`, `sw` or `ew` that must hold), the substring
    /// index first narrows the rows to those whose search copy contains the needles, and the
    /// exact condition then decides on those candidates alone.
    pub(crate) fn condition(&mut self, filter: &Filter, sql: &mut Sql) -> Result<(), BackendError> {
        let Some(needles) = self.needles(filter, None, 0) else {
            return self.expr(filter, sql, false, 0, &Scope::Resource);
        };
        self.narrowed = true;
        sql.push("(");
        self.push_needles(sql, &needles);
        sql.push(" AND ");
        self.expr(filter, sql, false, 0, &Scope::Resource)?;
        sql.push(")");
        Ok(())
    }

    // --- the substring index -----------------------------------------------------------------

    /// What the substring index can test of `f`: needles of which every resource matching `f`
    /// has one in some string of its search copy (`None` when nothing of the kind is implied).
    /// `within` is the complex attribute of an enclosing value path.
    fn needles(&self, f: &Filter, within: Option<&AttributeDef>, depth: usize) -> Option<Needles> {
        if depth > MAX_DEPTH {
            return None;
        }
        match f {
            Filter::And(a, b) => match (
                self.needles(a, within, depth + 1),
                self.needles(b, within, depth + 1),
            ) {
                (Some(a), Some(b)) => Some(Needles::All(Box::new(a), Box::new(b))),
                (a, b) => a.or(b),
            },
            Filter::Or(a, b) => Some(Needles::Any(
                Box::new(self.needles(a, within, depth + 1)?),
                Box::new(self.needles(b, within, depth + 1)?),
            )),
            // Leaves under a negation are two-valued, so a double negation is the filter itself.
            Filter::Not(inner) => match inner.as_ref() {
                Filter::Not(f) => self.needles(f, within, depth + 2),
                _ => None,
            },
            Filter::Compare {
                path,
                op: op @ (CompareOp::Co | CompareOp::Sw | CompareOp::Ew),
                value: CompValue::Str(s),
            } => {
                let target = match within {
                    Some(def) if path.sub.is_none() => def.sub_attribute(&path.name)?,
                    Some(_) => return None,
                    None => self.indexed_target(path, *op)?,
                };
                let target = match target.attr_type {
                    AttrType::Complex => target.sub_attribute("value")?,
                    _ => target,
                };
                if !matches!(
                    target.attr_type,
                    AttrType::String | AttrType::Reference | AttrType::Binary
                ) {
                    return None;
                }
                let needle = if is_exact(target) { s.clone() } else { fold(s) };
                (needle.chars().count() >= MIN_NEEDLE && !needle.contains('\0'))
                    .then_some(Needles::One(needle))
            }
            Filter::ValuePath { path, filter } if within.is_none() => {
                let res = self.rt.resolve(path)?;
                if res.sub.is_some()
                    || res.attr.attr_type != AttrType::Complex
                    || (res.is_core && self.outside_search_copy(&res.attr.name))
                {
                    return None;
                }
                self.needles(filter, Some(res.attr), depth + 1)
            }
            _ => None,
        }
    }

    /// Whether a core attribute's values are not strings of the search copy (they live in
    /// columns or in the membership table).
    fn outside_search_copy(&self, name: &str) -> bool {
        let relation = match self.kind() {
            ResourceKind::Group => name == "members",
            ResourceKind::User => name == "groups",
        };
        relation || (name != "externalId" && scimd_core::schema::common_attribute(name).is_some())
    }

    /// The definition a resource-level substring test compares, when the candidate values are
    /// strings of the search copy as stored (JSON values, or columns that hold them unchanged)
    /// and no better index serves the test.
    fn indexed_target(&self, path: &AttrPath, op: CompareOp) -> Option<&'a AttributeDef> {
        if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("schemas") {
            return None;
        }
        let rt = self.rt;
        let res = rt.resolve(path)?;
        if res.is_core && self.outside_search_copy(&res.attr.name) {
            return None;
        }
        let target = res.sub.unwrap_or(res.attr);
        // These columns hold the value folded whatever the schema says; the search copy folds
        // only what is not caseExact.
        let folded_column = res.is_core
            && match (res.attr.name.as_str(), res.sub.map(|s| s.name.as_str())) {
                ("userName", None) => self.kind() == ResourceKind::User,
                ("displayName", None) => true,
                ("emails", Some("value")) => self.kind() == ResourceKind::User,
                _ => false,
            };
        if folded_column && is_exact(target) {
            return None;
        }
        // A prefix of an indexed column is a range of its B-tree index.
        let btree = folded_column || (res.is_core && res.attr.name == "externalId");
        (!(btree && op == CompareOp::Sw)).then_some(target)
    }

    /// The condition that some string of the resource contains the needles.
    fn push_needles(&self, sql: &mut Sql, needles: &Needles) {
        match self.dialect {
            Dialect::Sqlite => {
                // One full-text query over the trigram index; a phrase of trigrams matches where
                // the needle occurs.
                let mut query = String::new();
                needles.fts5_query(&mut query);
                // CROSS JOIN keeps the index as the outer loop: the planner has no statistics
                // of the full-text table and would otherwise probe it once per key.
                sql.push(
                    "r.id IN (SELECT k.id FROM scimd_search_fts CROSS JOIN scimd_search_keys k \
                     ON k.rid = scimd_search_fts.rowid WHERE scimd_search_fts MATCH ",
                );
                sql.bind_text(query);
                sql.push(" AND k.source = ");
                sql.bind_text(self.source);
                sql.push(" AND k.kind = ");
                sql.bind_text(self.kind().name());
                sql.push(")");
            }
            Dialect::Postgres => self.pg_needles(sql, needles),
        }
    }

    fn pg_needles(&self, sql: &mut Sql, needles: &Needles) {
        match needles {
            // The column of the trigram index `scimd_resources_search_text_trgm`.
            Needles::One(n) => {
                sql.push("r.search_text LIKE ");
                sql.bind_text(format!("%{}%", like_escape(n)));
            }
            Needles::All(a, b) | Needles::Any(a, b) => {
                sql.push("(");
                self.pg_needles(sql, a);
                sql.push(if matches!(needles, Needles::All(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.pg_needles(sql, b);
                sql.push(")");
            }
        }
    }

    fn expr(
        &mut self,
        f: &Filter,
        sql: &mut Sql,
        negated: bool,
        depth: usize,
        scope: &Scope<'a>,
    ) -> Result<(), BackendError> {
        if depth > MAX_DEPTH {
            return Err(BackendError::UnsupportedFilter(
                "the filter is nested too deeply".into(),
            ));
        }
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let op = if matches!(f, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                self.expr(a, sql, negated, depth + 1, scope)?;
                sql.push(op);
                self.expr(b, sql, negated, depth + 1, scope)?;
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("(NOT ");
                self.expr(inner, sql, !negated, depth + 1, scope)?;
                sql.push(")");
            }
            // `eq null` means absent and `ne null` present (RFC 7643 §2.5).
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Null,
            } => {
                sql.push("(NOT ");
                self.leaf(sql, true, scope, path, &Leaf::Present)?;
                sql.push(")");
            }
            Filter::Compare {
                path,
                op: CompareOp::Ne,
                value: CompValue::Null,
            } => self.leaf(sql, negated, scope, path, &Leaf::Present)?,
            Filter::Compare {
                value: CompValue::Null,
                ..
            } => {
                sql.push("1 = 0");
            }
            // `ne` is the complement of `eq`, absent attributes included.
            Filter::Compare {
                path,
                op: CompareOp::Ne,
                value,
            } => {
                sql.push("(NOT ");
                self.leaf(sql, true, scope, path, &Leaf::Cmp(CompareOp::Eq, value))?;
                sql.push(")");
            }
            Filter::Compare { path, op, value } => {
                self.leaf(sql, negated, scope, path, &Leaf::Cmp(*op, value))?;
            }
            Filter::Present(path) => self.leaf(sql, negated, scope, path, &Leaf::Present)?,
            Filter::ValuePath { path, filter } => {
                if negated {
                    sql.push("((");
                }
                self.value_path(sql, scope, path, filter, depth)?;
                if negated {
                    sql.push(") IS TRUE)");
                }
            }
        }
        Ok(())
    }

    /// A comparison or presence test, made two-valued when under a negation.
    fn leaf(
        &mut self,
        sql: &mut Sql,
        negated: bool,
        scope: &Scope<'a>,
        path: &AttrPath,
        leaf: &Leaf<'_>,
    ) -> Result<(), BackendError> {
        if negated {
            sql.push("((");
        }
        match scope {
            Scope::Resource => self.resource_leaf(sql, path, leaf)?,
            Scope::Json { loc, def } => {
                let sub = relative_sub(path, def)?;
                match sub {
                    Some(sub) => self.json_leaf(sql, loc.child(&sub.name), sub, leaf),
                    None => {
                        sql.push("1 = 0");
                    }
                }
            }
            Scope::Meta => {
                if path.urn.is_some() || path.sub.is_some() {
                    sql.push("1 = 0");
                } else {
                    self.resource_leaf(sql, &AttrPath::with_sub("meta", path.name.clone()), leaf)?;
                }
            }
            Scope::Member { m } => {
                let val = member_val(m, &path.name);
                let def = self.member_def(&path.name);
                match def {
                    Some(def) => self.scalar_leaf(sql, &val, &def, leaf),
                    None => {
                        sql.push("1 = 0");
                    }
                }
            }
            Scope::UserGroup { m, g } => {
                let val = user_group_val(m, g, &path.name);
                match self.groups_sub_def(&path.name) {
                    Some(def) => self.scalar_leaf(sql, &val, &def, leaf),
                    None => {
                        sql.push("1 = 0");
                    }
                }
            }
        }
        if negated {
            sql.push(") IS TRUE)");
        }
        Ok(())
    }

    fn member_def(&self, name: &str) -> Option<AttributeDef> {
        self.rt
            .schema
            .attribute("members")
            .and_then(|m| m.sub_attribute(name))
            .cloned()
    }

    fn groups_sub_def(&self, name: &str) -> Option<AttributeDef> {
        self.rt
            .schema
            .attribute("groups")
            .and_then(|m| m.sub_attribute(name))
            .cloned()
    }

    /// A leaf whose path is relative to the resource.
    fn resource_leaf(
        &mut self,
        sql: &mut Sql,
        path: &AttrPath,
        leaf: &Leaf<'_>,
    ) -> Result<(), BackendError> {
        let rt = self.rt;
        if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("schemas") {
            self.schemas_leaf(sql, leaf);
            return Ok(());
        }
        let Some(res) = rt.resolve(path) else {
            return Err(BackendError::UnsupportedFilter(format!(
                "unknown attribute {path}"
            )));
        };
        let attr = res.attr;
        let sub = res.sub;
        let top = res.is_core && path.urn.as_deref().is_none_or(|u| u == rt.schema.id);
        let name = attr.name.as_str();

        if res.is_core && scimd_core::schema::common_attribute(name).is_some() {
            match (name, sub.map(|s| s.name.as_str())) {
                ("id", _) => self.scalar_leaf(sql, &Val::Text("r.id".into()), attr, leaf),
                ("externalId", _) => {
                    self.scalar_leaf(sql, &Val::Text("r.external_id".into()), attr, leaf)
                }
                ("meta", Some(s)) => {
                    let val = match s {
                        "created" => Val::Micros("r.created".into()),
                        "lastModified" => Val::Micros("r.last_modified".into()),
                        "version" => Val::Version("r.version".into()),
                        "resourceType" => Val::Const(self.kind().name().into()),
                        _ => Val::Missing,
                    };
                    let def = sub.unwrap_or(attr);
                    self.scalar_leaf(sql, &val, def, leaf);
                }
                ("meta", None) => {
                    sql.push(match leaf {
                        Leaf::Present => "1 = 1",
                        Leaf::Cmp(..) => "1 = 0",
                    });
                }
                _ => {
                    sql.push("1 = 0");
                }
            }
            return Ok(());
        }
        if top {
            match (self.kind(), name) {
                (ResourceKind::User, "userName") if sub.is_none() => {
                    self.scalar_leaf(sql, &Val::Text("r.user_name_fold".into()), attr, leaf);
                    return Ok(());
                }
                (_, "displayName") if sub.is_none() => {
                    self.scalar_leaf(sql, &Val::Text("r.display_name_fold".into()), attr, leaf);
                    return Ok(());
                }
                (ResourceKind::Group, "members") => {
                    let m = self.alias("m");
                    sql.push("EXISTS (SELECT 1 FROM scimd_members ")
                        .push(&m)
                        .push(" WHERE ")
                        .push(&m)
                        .push(".source = r.source AND ")
                        .push(&m)
                        .push(".group_id = r.id");
                    let sub_name = sub
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| "value".into());
                    if !matches!(leaf, Leaf::Present) || sub.is_some() {
                        sql.push(" AND ");
                        let scope = Scope::Member { m: m.clone() };
                        self.leaf(sql, false, &scope, &AttrPath::new(sub_name), leaf)?;
                    }
                    sql.push(")");
                    return Ok(());
                }
                (ResourceKind::User, "groups") => {
                    let (m, g) = (self.alias("m"), self.alias("g"));
                    self.user_groups_from(sql, &m, &g);
                    let sub_name = sub
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| "value".into());
                    if !matches!(leaf, Leaf::Present) || sub.is_some() {
                        sql.push(" AND ");
                        let scope = Scope::UserGroup { m, g };
                        self.leaf(sql, false, &scope, &AttrPath::new(sub_name), leaf)?;
                    }
                    sql.push(")");
                    return Ok(());
                }
                (ResourceKind::User, "emails")
                    if sub.is_some_and(|s| s.name == "value")
                        && match leaf {
                            Leaf::Cmp(op, _) => !(self.narrowed && op.is_substring()),
                            Leaf::Present => false,
                        } =>
                {
                    // The side table holds every folded emails.value: the index serves `eq`
                    // and `sw`, and `co`/`ew` scan a narrow table instead of JSON (unless the
                    // substring index already narrowed the rows: then the search copy of each
                    // candidate is checked).
                    sql.push("r.id IN (SELECT user_id FROM scimd_emails WHERE source = ");
                    sql.bind_text(self.source);
                    sql.push(" AND ");
                    let def = sub.unwrap_or(attr);
                    self.scalar_leaf(sql, &Val::Text("value".into()), def, leaf);
                    sql.push(")");
                    return Ok(());
                }
                _ => {}
            }
        }
        let loc = JsonLoc::attribute(&res);
        match sub {
            None => self.json_leaf(sql, loc, attr, leaf),
            Some(sub) if attr.multi_valued => {
                let (elem, _) = self.each_open(sql, &loc);
                self.json_leaf(sql, elem.child(&sub.name), sub, leaf);
                sql.push(")");
            }
            Some(sub) => self.json_leaf(sql, loc.child(&sub.name), sub, leaf),
        }
        Ok(())
    }

    /// `EXISTS (SELECT 1 FROM <membership of r joined to its groups> WHERE ...` (left open).
    fn user_groups_from(&mut self, sql: &mut Sql, m: &str, g: &str) {
        sql.push("EXISTS (SELECT 1 FROM scimd_members ")
            .push(m)
            .push(" JOIN scimd_resources ")
            .push(g)
            .push(" ON ")
            .push(g)
            .push(".source = ")
            .push(m)
            .push(".source AND ")
            .push(g)
            .push(".kind = 'Group' AND ")
            .push(g)
            .push(".id = ")
            .push(m)
            .push(".group_id WHERE ")
            .push(m)
            .push(".source = r.source AND ")
            .push(m)
            .push(".member_type = 'User' AND ")
            .push(m)
            .push(".member_id = r.id");
    }

    /// Opens `EXISTS (SELECT 1 FROM <elements of the array at loc> WHERE ` and returns the
    /// location of one element. The caller closes the parenthesis.
    fn each_open(&mut self, sql: &mut Sql, loc: &JsonLoc) -> (JsonLoc, String) {
        let e = self.alias("e");
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("EXISTS (SELECT 1 FROM json_each(")
                    .push(&loc.base)
                    .push(", ");
                self.sqlite_path(sql, loc);
                sql.push(") AS ").push(&e).push(" WHERE ");
                // Elements are addressed through the document and their full key, so that a
                // scalar where an object was expected yields NULL instead of a JSON error.
                let elem = JsonLoc {
                    base: loc.base.clone(),
                    prefix: Some(format!("{e}.fullkey")),
                    path: Vec::new(),
                };
                (elem, e)
            }
            Dialect::Postgres => {
                sql.push("EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = 'array' THEN ");
                self.pg_json(sql, loc);
                sql.push(" ELSE '[]'::jsonb END) AS ")
                    .push(&e)
                    .push("(value) WHERE ");
                let elem = JsonLoc {
                    base: format!("{e}.value"),
                    prefix: None,
                    path: Vec::new(),
                };
                (elem, e)
            }
        }
    }

    fn value_path(
        &mut self,
        sql: &mut Sql,
        scope: &Scope<'a>,
        path: &AttrPath,
        inner: &Filter,
        depth: usize,
    ) -> Result<(), BackendError> {
        if !matches!(scope, Scope::Resource) {
            return Err(BackendError::UnsupportedFilter(
                "value filters cannot be nested".into(),
            ));
        }
        let rt = self.rt;
        let Some(res) = rt.resolve(path) else {
            return Err(BackendError::UnsupportedFilter(format!(
                "unknown attribute {path}"
            )));
        };
        let attr = res.attr;
        if res.sub.is_some() {
            return Err(BackendError::UnsupportedFilter(format!(
                "a value filter needs an attribute without sub-attribute: {path}"
            )));
        }
        if res.is_core {
            match (self.kind(), attr.name.as_str()) {
                (ResourceKind::Group, "members") => {
                    let m = self.alias("m");
                    sql.push("EXISTS (SELECT 1 FROM scimd_members ")
                        .push(&m)
                        .push(" WHERE ")
                        .push(&m)
                        .push(".source = r.source AND ")
                        .push(&m)
                        .push(".group_id = r.id AND ");
                    self.expr(inner, sql, false, depth + 1, &Scope::Member { m })?;
                    sql.push(")");
                    return Ok(());
                }
                (ResourceKind::User, "groups") => {
                    let (m, g) = (self.alias("m"), self.alias("g"));
                    self.user_groups_from(sql, &m, &g);
                    sql.push(" AND ");
                    self.expr(inner, sql, false, depth + 1, &Scope::UserGroup { m, g })?;
                    sql.push(")");
                    return Ok(());
                }
                (_, "meta") => {
                    return self.expr(inner, sql, false, depth + 1, &Scope::Meta);
                }
                _ => {}
            }
        }
        let loc = JsonLoc::attribute(&res);
        if attr.attr_type != AttrType::Complex {
            // The resolver refuses this; the reference matches nothing.
            sql.push("1 = 0");
            return Ok(());
        }
        if attr.multi_valued {
            let (elem, _) = self.each_open(sql, &loc);
            self.json_is_object(sql, &elem);
            sql.push(" AND ");
            let scope = Scope::Json {
                loc: elem,
                def: attr,
            };
            self.expr(inner, sql, false, depth + 1, &scope)?;
            sql.push(")");
        } else {
            sql.push("(");
            self.json_is_object(sql, &loc);
            sql.push(" AND ");
            let scope = Scope::Json { loc, def: attr };
            self.expr(inner, sql, false, depth + 1, &scope)?;
            sql.push(")");
        }
        Ok(())
    }

    /// A leaf on a JSON location whose definition is `def` (possibly multi-valued).
    fn json_leaf(&mut self, sql: &mut Sql, loc: JsonLoc, def: &AttributeDef, leaf: &Leaf<'_>) {
        if let Leaf::Present = leaf {
            self.json_present(sql, &loc, 0);
            return;
        }
        if def.multi_valued {
            let (elem, _) = self.each_open(sql, &loc);
            let mut one = def.clone();
            one.multi_valued = false;
            self.json_leaf(sql, elem, &one, leaf);
            sql.push(")");
            return;
        }
        if def.attr_type == AttrType::Complex {
            match def.sub_attribute("value") {
                // Comparing a complex attribute compares its `value` sub-attribute.
                Some(v) => self.json_leaf(sql, loc.child(&v.name), &v.clone(), leaf),
                None => {
                    sql.push("1 = 0");
                }
            }
            return;
        }
        self.scalar_leaf(sql, &Val::Json(loc), def, leaf);
    }

    /// Whether the JSON value at `loc` is an object.
    fn json_is_object(&self, sql: &mut Sql, loc: &JsonLoc) {
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("(");
                self.sqlite_type(sql, loc);
                sql.push(" = 'object')");
            }
            Dialect::Postgres => {
                sql.push("(jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = 'object')");
            }
        }
    }

    /// The reference's "present": not null, not `""`, and for arrays and objects some present
    /// element (two levels deep; below that, non-empty).
    fn json_present(&mut self, sql: &mut Sql, loc: &JsonLoc, depth: u8) {
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("(CASE ");
                self.sqlite_type(sql, loc);
                sql.push(" WHEN 'text' THEN ");
                self.sqlite_value(sql, loc);
                sql.push(" <> '' WHEN 'null' THEN 0 WHEN 'array' THEN ");
                self.children_present(sql, loc, depth);
                sql.push(" WHEN 'object' THEN ");
                self.children_present(sql, loc, depth);
                sql.push(" ELSE ");
                self.sqlite_type(sql, loc);
                sql.push(" IS NOT NULL END)");
            }
            Dialect::Postgres => {
                sql.push("(CASE jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") WHEN 'string' THEN ");
                self.pg_json(sql, loc);
                sql.push(" <> '\"\"'::jsonb WHEN 'null' THEN false WHEN 'array' THEN ");
                self.children_present(sql, loc, depth);
                sql.push(" WHEN 'object' THEN ");
                self.children_present(sql, loc, depth);
                sql.push(" ELSE jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") IS NOT NULL END)");
            }
        }
    }

    /// Some child of the array or object at `loc` is present (at depth 2: some child exists).
    fn children_present(&mut self, sql: &mut Sql, loc: &JsonLoc, depth: u8) {
        let e = self.alias("c");
        let child = match self.dialect {
            Dialect::Sqlite => {
                sql.push("EXISTS (SELECT 1 FROM json_each(")
                    .push(&loc.base)
                    .push(", ");
                self.sqlite_path(sql, loc);
                sql.push(") AS ").push(&e);
                JsonLoc {
                    base: loc.base.clone(),
                    prefix: Some(format!("{e}.fullkey")),
                    path: Vec::new(),
                }
            }
            Dialect::Postgres => {
                sql.push("EXISTS (SELECT 1 FROM (SELECT value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = 'array' THEN ");
                self.pg_json(sql, loc);
                sql.push(" ELSE '[]'::jsonb END) UNION ALL SELECT value FROM jsonb_each(CASE WHEN jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = 'object' THEN ");
                self.pg_json(sql, loc);
                sql.push(" ELSE '{}'::jsonb END)) AS ")
                    .push(&e)
                    .push("(value)");
                JsonLoc {
                    base: format!("{e}.value"),
                    prefix: None,
                    path: Vec::new(),
                }
            }
        };
        if depth < 2 {
            sql.push(" WHERE ");
            self.json_present(sql, &child, depth + 1);
        }
        sql.push(")");
    }

    /// `schemas`: the core schema URN, and the URN of each extension the resource carries.
    fn schemas_leaf(&mut self, sql: &mut Sql, leaf: &Leaf<'_>) {
        let Leaf::Cmp(op, value) = leaf else {
            sql.push("1 = 1");
            return;
        };
        let mut def = AttributeDef::new("schemas", AttrType::String);
        def.multi_valued = true;
        if const_matches(&def, *op, value, &self.rt.schema.id) {
            sql.push("1 = 1");
            return;
        }
        let rt = self.rt;
        let carried: Vec<&str> = rt
            .extensions
            .iter()
            .map(|e| e.schema.id.as_str())
            .filter(|urn| const_matches(&def, *op, value, urn))
            .collect();
        if carried.is_empty() {
            sql.push("1 = 0");
            return;
        }
        sql.push("(");
        for (i, urn) in carried.into_iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            let loc = JsonLoc {
                base: "r.search".into(),
                prefix: None,
                path: vec![urn.to_string()],
            };
            match self.dialect {
                Dialect::Sqlite => self.sqlite_type(sql, &loc),
                Dialect::Postgres => self.pg_json(sql, &loc),
            }
            sql.push(" IS NOT NULL");
        }
        sql.push(")");
    }

    /// A leaf on one scalar candidate value.
    fn scalar_leaf(&mut self, sql: &mut Sql, val: &Val, def: &AttributeDef, leaf: &Leaf<'_>) {
        match leaf {
            Leaf::Present => self.present(sql, val),
            Leaf::Cmp(op, value) => self.compare(sql, val, def, *op, value),
        }
    }

    fn present(&mut self, sql: &mut Sql, val: &Val) {
        match val {
            Val::Json(loc) => self.json_present(sql, loc, 0),
            Val::Text(expr) => {
                sql.push("(")
                    .push(expr)
                    .push(" IS NOT NULL AND ")
                    .push(expr)
                    .push(" <> '')");
            }
            Val::Micros(_) | Val::Version(_) | Val::Const(_) => {
                sql.push("1 = 1");
            }
            Val::Missing => {
                sql.push("1 = 0");
            }
        }
    }

    fn compare(
        &mut self,
        sql: &mut Sql,
        val: &Val,
        def: &AttributeDef,
        op: CompareOp,
        value: &CompValue,
    ) {
        match (def.attr_type, value) {
            (AttrType::String | AttrType::Reference | AttrType::Binary, CompValue::Str(s)) => {
                if let Val::Const(c) = val {
                    let hit = const_matches(def, op, value, c);
                    sql.push(if hit { "1 = 1" } else { "1 = 0" });
                    return;
                }
                let s = if is_exact(def) { s.clone() } else { fold(s) };
                self.text_compare(sql, val, op, &s);
            }
            (AttrType::DateTime, CompValue::Str(s)) => match val {
                Val::Micros(col) => match time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(t) => self.micros_compare(sql, col, op, t),
                    Err(_) => {
                        sql.push("1 = 0");
                    }
                },
                _ => match normalize_datetime(s) {
                    Some(key) if !op.is_substring() => self.text_compare(sql, val, op, &key),
                    _ => {
                        sql.push("1 = 0");
                    }
                },
            },
            (AttrType::Boolean, CompValue::Bool(b)) if op == CompareOp::Eq => match val {
                Val::Json(loc) => match self.dialect {
                    Dialect::Sqlite => {
                        self.sqlite_type(sql, loc);
                        sql.push(" = ");
                        sql.bind_text(if *b { "true" } else { "false" });
                    }
                    Dialect::Postgres => {
                        self.pg_json(sql, loc);
                        sql.push(" = ");
                        sql.bind(Param::Json(b.to_string()));
                    }
                },
                _ => {
                    sql.push("1 = 0");
                }
            },
            (AttrType::Integer | AttrType::Decimal, CompValue::Num(n)) if !op.is_substring() => {
                let Val::Json(loc) = val else {
                    sql.push("1 = 0");
                    return;
                };
                let sym = op_symbol(op);
                match self.dialect {
                    Dialect::Sqlite => {
                        sql.push("(");
                        self.sqlite_type(sql, loc);
                        sql.push(" IN ('integer', 'real') AND ");
                        self.sqlite_value(sql, loc);
                        sql.push(sym);
                        match n.as_i64() {
                            Some(i) => sql.bind(Param::Int(i)),
                            None => sql.bind(Param::Real(n.as_f64().unwrap_or(f64::NAN))),
                        };
                        sql.push(")");
                    }
                    Dialect::Postgres => {
                        sql.push("(jsonb_typeof(");
                        self.pg_json(sql, loc);
                        sql.push(") = 'number' AND ");
                        self.pg_json(sql, loc);
                        sql.push(sym);
                        sql.bind(Param::Json(n.to_string()));
                        sql.push(")");
                    }
                }
            }
            _ => {
                sql.push("1 = 0");
            }
        }
    }

    /// Compares a text candidate with an already folded/normalized string.
    fn text_compare(&mut self, sql: &mut Sql, val: &Val, op: CompareOp, s: &str) {
        let rhs = |sql: &mut Sql| {
            match op {
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                    let esc = like_escape(s);
                    let pat = match op {
                        CompareOp::Co => format!("%{esc}%"),
                        CompareOp::Sw => format!("{esc}%"),
                        _ => format!("%{esc}"),
                    };
                    sql.push(" LIKE ");
                    sql.bind_text(pat);
                    sql.push(" ESCAPE '\\'");
                }
                _ => {
                    sql.push(op_symbol(op));
                    sql.bind_text(s);
                }
            };
        };
        match val {
            Val::Json(loc) => match self.dialect {
                Dialect::Sqlite => {
                    sql.push("(");
                    self.sqlite_type(sql, loc);
                    sql.push(" = 'text' AND ");
                    self.sqlite_value(sql, loc);
                    rhs(sql);
                    sql.push(")");
                }
                Dialect::Postgres => {
                    sql.push("(jsonb_typeof(");
                    self.pg_json(sql, loc);
                    sql.push(") = 'string' AND (");
                    self.pg_json(sql, loc);
                    sql.push(" #>> '{}') COLLATE \"C\"");
                    rhs(sql);
                    sql.push(")");
                }
            },
            Val::Text(expr) => {
                sql.push("(").push(expr);
                if self.dialect == Dialect::Postgres {
                    sql.push(" COLLATE \"C\"");
                }
                rhs(sql);
                sql.push(")");
            }
            Val::Version(col) => {
                match self.dialect {
                    Dialect::Sqlite => sql.push("(('W/\"' || ").push(col).push(" || '\"')"),
                    Dialect::Postgres => sql
                        .push("(('W/\"' || ")
                        .push(col)
                        .push("::text || '\"') COLLATE \"C\""),
                };
                rhs(sql);
                sql.push(")");
            }
            Val::Const(_) | Val::Micros(_) | Val::Missing => {
                sql.push("1 = 0");
            }
        }
    }

    /// Compares a microsecond column with a timestamp that may carry nanoseconds.
    fn micros_compare(&mut self, sql: &mut Sql, col: &str, op: CompareOp, t: time::OffsetDateTime) {
        let nanos = t.unix_timestamp_nanos();
        let floor = nanos.div_euclid(1000);
        let exact = nanos.rem_euclid(1000) == 0;
        let ceil = if exact { floor } else { floor + 1 };
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        let (sym, bound) = match op {
            CompareOp::Eq if !exact => {
                sql.push("1 = 0");
                return;
            }
            CompareOp::Eq => (" = ", floor),
            CompareOp::Gt => (" > ", floor),
            CompareOp::Ge => (" >= ", ceil),
            CompareOp::Lt => (" < ", ceil),
            CompareOp::Le => (" <= ", floor),
            _ => {
                sql.push("1 = 0");
                return;
            }
        };
        sql.push("(").push(col).push(sym);
        sql.bind_int(clamp(bound));
        sql.push(")");
    }

    // --- JSON access per dialect -------------------------------------------------------------

    fn sqlite_path(&self, sql: &mut Sql, loc: &JsonLoc) {
        let mut p = String::new();
        for seg in &loc.path {
            p.push_str(".\"");
            p.push_str(seg);
            p.push('"');
        }
        match &loc.prefix {
            Some(prefix) if p.is_empty() => {
                sql.push(prefix);
            }
            Some(prefix) => {
                sql.push("(").push(prefix).push(" || ");
                sql.bind_text(p);
                sql.push(")");
            }
            None => {
                sql.bind_text(format!("${p}"));
            }
        }
    }

    fn sqlite_value(&self, sql: &mut Sql, loc: &JsonLoc) {
        sql.push("json_extract(").push(&loc.base).push(", ");
        self.sqlite_path(sql, loc);
        sql.push(")");
    }

    fn sqlite_type(&self, sql: &mut Sql, loc: &JsonLoc) {
        sql.push("json_type(").push(&loc.base).push(", ");
        self.sqlite_path(sql, loc);
        sql.push(")");
    }

    fn pg_json(&self, sql: &mut Sql, loc: &JsonLoc) {
        sql.push("(").push(&loc.base);
        for seg in &loc.path {
            sql.push(" -> ");
            sql.bind_text(seg.clone());
            sql.push("::text");
        }
        sql.push(")");
    }

    // --- sorting -----------------------------------------------------------------------------

    /// Writes the SQL sort key of a sort path into `s` (nothing when the order is by id
    /// alone) and says how to bind and order it.
    pub(crate) fn sort_key(&mut self, sort: &Sort, s: &mut Sql) -> Result<SortKey, BackendError> {
        let rt = self.rt;
        let path = &sort.path;
        let Some(res) = rt.resolve(path) else {
            return Err(BackendError::UnsupportedFilter(format!(
                "unknown sort attribute {path}"
            )));
        };
        let attr = res.attr;
        let sub = res.sub;
        let mut key = SortKey {
            ty: SortType::Text,
            nullable: true,
            by_id: false,
            unique: false,
        };
        if res.is_core && scimd_core::schema::common_attribute(&attr.name).is_some() {
            match (attr.name.as_str(), sub.map(|s| s.name.as_str())) {
                ("id", _) => {
                    s.push("r.id");
                    key.nullable = false;
                    key.unique = true;
                }
                ("externalId", _) => {
                    s.push("r.external_id");
                }
                ("meta", Some("created")) => {
                    s.push("r.created");
                    key.ty = SortType::Int;
                    key.nullable = false;
                }
                ("meta", Some("lastModified")) => {
                    s.push("r.last_modified");
                    key.ty = SortType::Int;
                    key.nullable = false;
                }
                ("meta", Some("version")) => {
                    s.push("r.version");
                    key.ty = SortType::Int;
                    key.nullable = false;
                }
                _ => return Ok(SortKey::none()),
            }
            return Ok(key);
        }
        if res.is_core {
            match (self.kind(), attr.name.as_str(), sub) {
                (ResourceKind::User, "userName", None) => {
                    s.push("r.user_name_fold");
                    // userName is required and unique per source: the unique index alone
                    // serves the order.
                    key.nullable = false;
                    key.unique = true;
                    return Ok(key);
                }
                (kind, "displayName", None) => {
                    s.push("r.display_name_fold");
                    key.nullable = kind != ResourceKind::Group;
                    return Ok(key);
                }
                (ResourceKind::Group, "members", _) => {
                    let col = match sub.map(|s| s.name.as_str()).unwrap_or("value") {
                        "value" => "member_id",
                        "type" => "lower(member_type)",
                        "display" => "display_fold",
                        _ => return Ok(SortKey::missing(s)),
                    };
                    s.push("(SELECT ")
                        .push(col)
                        .push(
                            " FROM scimd_members WHERE source = r.source AND group_id = r.id AND ",
                        )
                        .push(col)
                        .push(" IS NOT NULL ORDER BY seq LIMIT 1)");
                    return Ok(key);
                }
                (ResourceKind::User, "groups", _) => {
                    let col = match sub.map(|s| s.name.as_str()).unwrap_or("value") {
                        "value" => "m.group_id",
                        "display" => "g.display_name_fold",
                        "type" => "'direct'",
                        _ => return Ok(SortKey::missing(s)),
                    };
                    s.push("(SELECT ")
                        .push(col)
                        .push(
                            " FROM scimd_members m JOIN scimd_resources g ON g.source = m.source \
                             AND g.kind = 'Group' AND g.id = m.group_id WHERE m.source = r.source \
                             AND m.member_type = 'User' AND m.member_id = r.id AND ",
                        )
                        .push(col)
                        .push(" IS NOT NULL ORDER BY m.seq LIMIT 1)");
                    return Ok(key);
                }
                _ => {}
            }
        }
        let mut loc = JsonLoc::attribute(&res);
        let (target, value_key) = match sub {
            Some(sub) => (sub, Some(sub.name.clone())),
            None if attr.attr_type == AttrType::Complex => match attr.sub_attribute("value") {
                Some(v) => (v, Some(v.name.clone())),
                None => return Ok(SortKey::missing(s)),
            },
            None => (attr, None),
        };
        key.ty = match target.attr_type {
            AttrType::Integer | AttrType::Decimal => SortType::Num,
            AttrType::Boolean => SortType::Bool,
            _ => SortType::Text,
        };
        if attr.multi_valued {
            // RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary value, else
            // its first.
            self.multi_sort_key(s, &loc, value_key.as_deref(), key.ty)?;
        } else {
            if let Some(v) = &value_key {
                loc.path.push(v.clone());
            }
            self.typed_scalar(s, &loc, key.ty);
        }
        Ok(key)
    }

    /// A JSON scalar as a typed SQL value (`NULL` when missing or of another type).
    fn typed_scalar(&self, sql: &mut Sql, loc: &JsonLoc, ty: SortType) {
        match self.dialect {
            Dialect::Sqlite => {
                let types = match ty {
                    SortType::Text => "('text')",
                    SortType::Num | SortType::Int => "('integer', 'real')",
                    SortType::Bool => "('true', 'false')",
                };
                sql.push("(CASE WHEN ");
                self.sqlite_type(sql, loc);
                sql.push(" IN ").push(types).push(" THEN ");
                self.sqlite_value(sql, loc);
                sql.push(" END)");
            }
            Dialect::Postgres => {
                let (t, cast) = match ty {
                    SortType::Text => ("string", " #>> '{}') COLLATE \"C\""),
                    SortType::Num | SortType::Int => ("number", ")::numeric"),
                    SortType::Bool => ("boolean", ")::boolean"),
                };
                sql.push("(CASE WHEN jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = '").push(t).push("' THEN (");
                self.pg_json(sql, loc);
                sql.push(cast).push(" END)");
            }
        }
    }

    /// The sort value of a multi-valued attribute, as the reference takes it: the element
    /// whose `primary` is true, else the first element; then its sub-attribute.
    fn multi_sort_key(
        &mut self,
        sql: &mut Sql,
        loc: &JsonLoc,
        value_key: Option<&str>,
        ty: SortType,
    ) -> Result<(), BackendError> {
        let e = self.alias("e");
        let elem = match self.dialect {
            Dialect::Sqlite => JsonLoc {
                base: loc.base.clone(),
                prefix: Some(format!("{e}.fullkey")),
                path: Vec::new(),
            },
            Dialect::Postgres => JsonLoc {
                base: format!("{e}.value"),
                prefix: None,
                path: Vec::new(),
            },
        };
        let mut value = elem.clone();
        if let Some(v) = value_key {
            value.path.push(v.to_string());
        }
        let primary = elem.child("primary");
        match self.dialect {
            Dialect::Sqlite => {
                // SQLite cannot order a subquery by an expression of the outer row, so the
                // choice "primary, else first" is a CASE over two ordered-by-index lookups.
                let pick = |t: &mut Self, sql: &mut Sql, only_primary: bool, value: bool| {
                    sql.push("(SELECT ");
                    if value {
                        t.typed_scalar(sql, &value_loc(&elem, value_key), ty);
                    } else {
                        sql.push("1");
                    }
                    sql.push(" FROM json_each(").push(&loc.base).push(", ");
                    t.sqlite_path(sql, loc);
                    sql.push(") AS ").push(&e).push(" WHERE ");
                    t.sqlite_type(sql, loc);
                    sql.push(" = 'array'");
                    if only_primary {
                        sql.push(" AND ");
                        t.sqlite_type(sql, &primary);
                        sql.push(" = 'true'");
                    }
                    sql.push(" ORDER BY ").push(&e).push(".key LIMIT 1)");
                };
                sql.push("(CASE WHEN EXISTS ");
                pick(self, sql, true, false);
                sql.push(" THEN ");
                pick(self, sql, true, true);
                sql.push(" ELSE ");
                pick(self, sql, false, true);
                sql.push(" END)");
            }
            Dialect::Postgres => {
                sql.push("(SELECT ");
                self.typed_scalar(sql, &value, ty);
                sql.push(" FROM jsonb_array_elements(CASE WHEN jsonb_typeof(");
                self.pg_json(sql, loc);
                sql.push(") = 'array' THEN ");
                self.pg_json(sql, loc);
                sql.push(" ELSE '[]'::jsonb END) WITH ORDINALITY AS ")
                    .push(&e)
                    .push("(value, ord) ORDER BY (");
                self.pg_json(sql, &primary);
                sql.push(" IS NOT DISTINCT FROM 'true'::jsonb) DESC, ")
                    .push(&e)
                    .push(".ord LIMIT 1)");
            }
        }
        Ok(())
    }
}

/// The shortest needle the substring index serves: both indexes are made of trigrams, and a
/// shorter needle contains none.
const MIN_NEEDLE: usize = 3;

/// Needles of a filter for the substring index, as stored in the search copy (folded unless
/// the attribute is caseExact).
#[derive(Debug, Clone, PartialEq)]
enum Needles {
    One(String),
    All(Box<Needles>, Box<Needles>),
    Any(Box<Needles>, Box<Needles>),
}

impl Needles {
    /// An FTS5 query: each needle a quoted phrase (quotes doubled), joined by `AND` / `OR`.
    fn fts5_query(&self, out: &mut String) {
        match self {
            Needles::One(n) => {
                out.push('"');
                out.push_str(&n.replace('"', "\"\""));
                out.push('"');
            }
            Needles::All(a, b) | Needles::Any(a, b) => {
                out.push('(');
                a.fts5_query(out);
                out.push_str(if matches!(self, Needles::All(..)) {
                    " AND "
                } else {
                    " OR "
                });
                b.fts5_query(out);
                out.push(')');
            }
        }
    }
}

/// What a leaf tests.
enum Leaf<'v> {
    Cmp(CompareOp, &'v CompValue),
    Present,
}

/// The SQL type a sort key is bound and compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortType {
    Text,
    Int,
    Num,
    Bool,
}

/// How a sort key written by [`Translator::sort_key`] is bound and ordered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortKey {
    pub(crate) ty: SortType,
    /// Whether some resources may lack a value (they sort last).
    pub(crate) nullable: bool,
    /// The order is by id alone (no key was written).
    pub(crate) by_id: bool,
    /// No two resources of a source share a key, so ties need no id order (and the unique
    /// index alone serves the order).
    pub(crate) unique: bool,
}

impl SortKey {
    fn none() -> SortKey {
        SortKey {
            ty: SortType::Text,
            nullable: false,
            by_id: true,
            unique: true,
        }
    }

    fn missing(sql: &mut Sql) -> SortKey {
        sql.push("NULL");
        SortKey {
            ty: SortType::Text,
            nullable: true,
            by_id: false,
            unique: false,
        }
    }
}

/// The relative sub-attribute a path inside a value filter names.
fn relative_sub<'d>(
    path: &AttrPath,
    def: &'d AttributeDef,
) -> Result<Option<&'d AttributeDef>, BackendError> {
    if path.sub.is_some() {
        return Err(BackendError::UnsupportedFilter(format!(
            "{path} is not a sub-attribute of {}",
            def.name
        )));
    }
    Ok(def.sub_attribute(&path.name))
}

fn member_val(m: &str, name: &str) -> Val {
    match name {
        "value" => Val::Text(format!("{m}.member_id")),
        // Member types are `User`/`Group`: ASCII, so SQL lower() is the Rust fold.
        "type" => Val::Text(format!("lower({m}.member_type)")),
        "display" => Val::Text(format!("{m}.display_fold")),
        _ => Val::Missing,
    }
}

fn user_group_val(m: &str, g: &str, name: &str) -> Val {
    match name {
        "value" => Val::Text(format!("{m}.group_id")),
        "display" => Val::Text(format!("{g}.display_name_fold")),
        "type" => Val::Const("direct".into()),
        _ => Val::Missing,
    }
}

fn op_symbol(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => " = ",
        CompareOp::Ne => " <> ",
        CompareOp::Gt => " > ",
        CompareOp::Ge => " >= ",
        CompareOp::Lt => " < ",
        CompareOp::Le => " <= ",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => " = ",
    }
}

/// Escapes `\`, `%` and `_` for `LIKE ... ESCAPE '\'`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn value_loc(elem: &JsonLoc, value_key: Option<&str>) -> JsonLoc {
    match value_key {
        Some(v) => elem.child(v),
        None => elem.clone(),
    }
}

/// Binary and reference values always compare exactly (RFC 7643 §2.3.6, §2.3.7).
pub(crate) fn is_exact(def: &AttributeDef) -> bool {
    def.case_exact || matches!(def.attr_type, AttrType::Binary | AttrType::Reference)
}

/// Whether a constant candidate value satisfies `op value`, decided by the reference itself.
fn const_matches(def: &AttributeDef, op: CompareOp, value: &CompValue, c: &str) -> bool {
    let mut sub = def.clone();
    sub.name = "value".into();
    sub.multi_valued = false;
    let mut wrapper = AttributeDef::new("constant", AttrType::Complex);
    wrapper.sub_attributes = vec![sub];
    let f = Filter::Compare {
        path: AttrPath::new("value"),
        op,
        value: value.clone(),
    };
    scimd_core::filter::matches_value(&f, &wrapper, &serde_json::json!({ "value": c }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escape_escapes_wildcards_and_the_escape_char() {
        assert_eq!(like_escape(r"50%_off\now"), r"50\%\_off\\now");
        assert_eq!(like_escape("plain"), "plain");
    }
}
