//! The SCIM operations as poem-openapi endpoints, documented in the OpenAPI document.
//!
//! Every path is written out in full (`/scim/:source/v2/Users`): a path variable in
//! `prefix_path` does not work. The authentik-compatible tree `/source/scim/...` reaches the
//! same operations through a rewrite in [`super::middleware`].

use super::discovery;
use super::payload::{
    BulkRequestSchema, BulkResponseSchema, Doc, ErrorSchema, GroupSchema, InvalidToken,
    ListResponseSchema, PatchOpSchema, Reply, ResourceTypeSchema, SchemaName, SchemaSchema,
    ScimBody, ScimRejection, ScimResponse, SearchRequestSchema, SpcSchema, UserSchema, header_doc,
    ok_response, responses,
};
use crate::app::{App, Source};
use crate::bulk;
use crate::config::PatchResponse;
use crate::tokens::{self, Refusal};
use poem::Request;
use poem::http::header;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::registry::MetaResponse;
use poem_openapi::{OpenApi, SecurityScheme, Tags};
use scimd_core::ScimError;
use scimd_core::hooks::RequestInfo;
use scimd_core::schema::ResourceKind;
use scimd_core::service::{
    ListParams, Precondition, ProjectionParams, Service, if_none_match_matches,
};
use std::marker::PhantomData;
use std::sync::Arc;

/// The prefix a request came in under, when it is not `/scim` (set by the rewrite).
#[derive(Debug, Clone, Copy)]
pub struct MountPrefix(pub &'static str);

/// The id of the request, set by the edge middleware for handlers and hooks.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A request authenticated for one source.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The application.
    pub app: Arc<App>,
    /// The source the token grants.
    pub source: Arc<Source>,
    /// The source's service for this request: hooks see the token name and request id.
    pub service: Service,
}

/// Logs and counts the compatibility rules that fired in a request when dropped, so every way
/// out of a handler (success, error, `?`) reports them.
struct FiredReport<'a>(&'a Authorized);

impl Drop for FiredReport<'_> {
    fn drop(&mut self) {
        let rules = self.0.service.fired().take();
        if rules.is_empty() {
            return;
        }
        let source = &self.0.source.slug;
        let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
        let request_id = self
            .0
            .service
            .request()
            .request_id
            .as_deref()
            .unwrap_or_default();
        tracing::info!(
            source = %source,
            request_id = %request_id,
            rules = %names.join(","),
            "compatibility rules applied"
        );
        for name in names {
            crate::metrics::record_rule_fired(source, name);
        }
    }
}

/// Bearer token of the source in the path. Tokens are created with `scimd token create`.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "opaque",
    checker = "check_bearer",
    rename = "bearerAuth"
)]
#[derive(Debug)]
pub struct BearerAuth(Authorized);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Authorized> {
    let app = req.data::<Arc<App>>().cloned().ok_or_else(|| {
        ScimRejection::into_poem(ScimError::internal("application state missing"))
    })?;
    // The slug is read from the path itself: poem-openapi renames path parameters internally.
    let slug = req
        .uri()
        .path()
        .strip_prefix("/scim/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let refusal = match app.source(&slug) {
        None => Refusal::OtherSource,
        Some(source) => {
            match tokens::authenticate(&*app.state, &slug, &bearer.token)
                .await
                .map_err(ScimRejection::into_poem)?
            {
                Ok(record) => {
                    tracing::debug!(source = %slug, token = %record.name, "authenticated");
                    let service = source.service.for_request(RequestInfo {
                        token_name: Some(record.name),
                        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
                    });
                    return Ok(Authorized {
                        source: source.clone(),
                        app,
                        service,
                    });
                }
                Err(r) => r,
            }
        }
    };
    tracing::info!(source = %slug, reason = ?refusal, "bearer token refused");
    Err(InvalidToken::into_poem(refusal.to_scim()))
}

/// The base URL of a source for this request: `{origin}{prefix}/{slug}/v2`.
pub fn base_url(req: &Request, app: &App, slug: &str) -> String {
    let prefix = req
        .extensions()
        .get::<MountPrefix>()
        .map(|p| p.0)
        .unwrap_or("/scim");
    format!("{}{prefix}/{slug}/v2", origin(req, app))
}

/// The scheme and authority clients reach scimd at.
pub fn origin(req: &Request, app: &App) -> String {
    if let Some(u) = &app.config.server.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let trusted = app.config.server.trust_forwarded_headers;
    let header_str = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_string())
    };
    let scheme = trusted
        .then(|| header_str("x-forwarded-proto"))
        .flatten()
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| "http".into());
    let host = trusted
        .then(|| header_str("x-forwarded-host"))
        .flatten()
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .or_else(|| header_str(header::HOST.as_str()))
        .filter(|h| is_safe_host(h))
        .unwrap_or_else(|| {
            req.local_addr()
                .to_string()
                .trim_start_matches("socket://")
                .to_string()
        });
    format!("{scheme}://{host}")
}

/// A `Host` value safe to echo into URLs: a name or address with an optional port.
fn is_safe_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

/// OpenAPI tags.
#[derive(Tags)]
enum ApiTags {
    /// User resources.
    Users,
    /// Group resources.
    Groups,
    /// Searches across resource types and Bulk.
    Operations,
    /// Service provider configuration, resource types and schemas.
    Discovery,
}

/// A resource type's schema name, for documentation.
pub trait KindDoc: Send + Sync + 'static {
    /// The schema component name.
    const SCHEMA: &'static str;
}
impl KindDoc for UserSchema {
    const SCHEMA: &'static str = UserSchema::NAME;
}
impl KindDoc for GroupSchema {
    const SCHEMA: &'static str = GroupSchema::NAME;
}

fn etag_header() -> poem_openapi::registry::MetaHeader {
    header_doc(
        "ETag",
        "The resource version as a weak entity tag, e.g. `W/\"3\"`.",
    )
}

/// Documentation of a list or search.
#[derive(Debug)]
pub struct ListDoc;
impl Doc for ListDoc {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(
                200,
                "A ListResponse. A filter with no match answers 200 with `totalResults: 0`; `count=0` answers only `totalResults`.",
                Some(ListResponseSchema::NAME),
                vec![],
            )],
            &[400, 401, 500, 503],
        )
    }
}

/// Documentation of a create.
#[derive(Debug)]
pub struct CreateDoc<K>(PhantomData<K>);
impl<K: KindDoc> Doc for CreateDoc<K> {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(
                201,
                "Created.",
                Some(K::SCHEMA),
                vec![
                    header_doc("Location", "The URL of the new resource."),
                    etag_header(),
                ],
            )],
            &[400, 401, 409, 413, 415, 500, 503],
        )
    }
}

/// Documentation of a read.
#[derive(Debug)]
pub struct ReadDoc<K>(PhantomData<K>);
impl<K: KindDoc> Doc for ReadDoc<K> {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![
                ok_response(200, "The resource.", Some(K::SCHEMA), vec![etag_header()]),
                ok_response(
                    304,
                    "Not modified: `If-None-Match` names the current version.",
                    None,
                    vec![etag_header()],
                ),
            ],
            &[400, 401, 404, 500, 503],
        )
    }
}

/// Documentation of a replace.
#[derive(Debug)]
pub struct ReplaceDoc<K>(PhantomData<K>);
impl<K: KindDoc> Doc for ReplaceDoc<K> {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(
                200,
                "The replaced resource.",
                Some(K::SCHEMA),
                vec![etag_header()],
            )],
            &[400, 401, 404, 409, 412, 413, 415, 500, 503],
        )
    }
}

/// Documentation of a patch.
#[derive(Debug)]
pub struct PatchDoc<K>(PhantomData<K>);
impl<K: KindDoc> Doc for PatchDoc<K> {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![
                ok_response(
                    200,
                    "The patched resource.",
                    Some(K::SCHEMA),
                    vec![etag_header()],
                ),
                ok_response(
                    204,
                    "Patched (sources configured with `patch_response = \"no_content\"`).",
                    None,
                    vec![etag_header()],
                ),
            ],
            &[400, 401, 404, 409, 412, 413, 415, 500, 503],
        )
    }
}

/// Documentation of a delete.
#[derive(Debug)]
pub struct DeleteDoc;
impl Doc for DeleteDoc {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(204, "Deleted.", None, vec![])],
            &[401, 404, 412, 500, 503],
        )
    }
}

/// Documentation of Bulk.
#[derive(Debug)]
pub struct BulkDoc;
impl Doc for BulkDoc {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(
                200,
                "A BulkResponse with one result per operation performed.",
                Some(BulkResponseSchema::NAME),
                vec![],
            )],
            &[400, 401, 413, 415, 500],
        )
    }
}

/// Documentation of a discovery read.
#[derive(Debug)]
pub struct DiscoveryDoc<S>(PhantomData<S>);
impl<S: SchemaName> Doc for DiscoveryDoc<S> {
    fn responses() -> Vec<MetaResponse> {
        responses(
            vec![ok_response(200, "The document.", Some(S::NAME), vec![])],
            &[401, 404, 405],
        )
    }
}

/// Documentation of `/Me`.
#[derive(Debug)]
pub struct MeDoc;
impl Doc for MeDoc {
    fn responses() -> Vec<MetaResponse> {
        let mut r = responses(vec![], &[401]);
        r.push(ok_response(
            501,
            "`/Me` is not implemented: tokens identify a source, not a user.",
            Some(ErrorSchema::NAME),
            vec![],
        ));
        r
    }
}

fn projection<'a>(a: &'a Option<String>, e: &'a Option<String>) -> ProjectionParams<'a> {
    ProjectionParams {
        attributes: a.as_deref(),
        excluded_attributes: e.as_deref(),
    }
}

/// Shared handlers of `/Users` and `/Groups`.
pub(crate) mod ops {
    use super::*;

    pub async fn list(
        auth: &Authorized,
        req: &Request,
        kind: ResourceKind,
        p: ListParams,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let base = base_url(req, &auth.app, &auth.source.slug);
        Ok(Reply::ok(auth.service.list(&base, kind, &p).await?))
    }

    pub async fn search(
        auth: &Authorized,
        req: &Request,
        kind: Option<ResourceKind>,
        body: serde_json::Value,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let p = ListParams::from_search_request(&body)?;
        let base = base_url(req, &auth.app, &auth.source.slug);
        let out = match kind {
            Some(kind) => auth.service.list(&base, kind, &p).await?,
            None => auth.service.search_all(&base, &p).await?,
        };
        Ok(Reply::ok(out))
    }

    pub async fn create(
        auth: &Authorized,
        req: &Request,
        kind: ResourceKind,
        body: serde_json::Value,
        proj: ProjectionParams<'_>,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let base = base_url(req, &auth.app, &auth.source.slug);
        let r = auth.service.create(&base, kind, &body, proj).await?;
        tracing::info!(source = %auth.source.slug, resource_type = kind.name(), id = %r.id, "created");
        Ok(Reply::with_status(201, Some(r.body))
            .etag(r.version)
            .location(r.location))
    }

    pub async fn get(
        auth: &Authorized,
        req: &Request,
        kind: ResourceKind,
        id: &str,
        proj: ProjectionParams<'_>,
        if_none_match: Option<&str>,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let base = base_url(req, &auth.app, &auth.source.slug);
        let r = auth.service.get(&base, kind, id, proj).await?;
        if let Some(inm) = if_none_match
            && if_none_match_matches(inm, r.version)
        {
            return Ok(Reply::with_status(304, None).etag(r.version));
        }
        Ok(Reply::ok(r.body).etag(r.version).location(r.location))
    }

    pub async fn replace(
        auth: &Authorized,
        req: &Request,
        kind: ResourceKind,
        id: &str,
        body: serde_json::Value,
        if_match: Option<&str>,
        proj: ProjectionParams<'_>,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let base = base_url(req, &auth.app, &auth.source.slug);
        let pre = Precondition::if_match(if_match);
        let r = auth
            .service
            .replace(&base, kind, id, &body, &pre, proj)
            .await?;
        tracing::info!(source = %auth.source.slug, resource_type = kind.name(), id = %r.id, "replaced");
        Ok(Reply::ok(r.body).etag(r.version).location(r.location))
    }

    pub async fn patch(
        auth: &Authorized,
        req: &Request,
        kind: ResourceKind,
        id: &str,
        body: serde_json::Value,
        if_match: Option<&str>,
        proj: ProjectionParams<'_>,
    ) -> Result<Reply, ScimError> {
        let _report = FiredReport(auth);
        let base = base_url(req, &auth.app, &auth.source.slug);
        let pre = Precondition::if_match(if_match);
        let r = auth
            .service
            .patch(&base, kind, id, &body, &pre, proj)
            .await?;
        tracing::info!(source = %auth.source.slug, resource_type = kind.name(), id = %r.id, "patched");
        Ok(match auth.source.patch_response {
            PatchResponse::Resource => Reply::ok(r.body).etag(r.version).location(r.location),
            PatchResponse::NoContent => Reply::with_status(204, None).etag(r.version),
        })
    }

    pub async fn delete(
        auth: &Authorized,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimError> {
        let pre = Precondition::if_match(if_match);
        auth.service.delete(kind, id, &pre).await?;
        tracing::info!(source = %auth.source.slug, resource_type = kind.name(), id = %id, "deleted");
        Ok(Reply::with_status(204, None))
    }
}

macro_rules! resource_api {
    (
        $api:ident, $kind:expr, $schema:ty, $tag:literal,
        list = $list_path:literal, item = $item_path:literal, search = $search_path:literal,
        ids = [$list_id:literal, $create_id:literal, $get_id:literal, $replace_id:literal,
               $patch_id:literal, $delete_id:literal, $search_id:literal]
    ) => {
        /// The operations of one resource type.
        #[derive(Debug, Clone, Copy)]
        pub struct $api;

        #[OpenApi]
        impl $api {
            /// List or filter resources (RFC 7644 §3.4.2).
            #[allow(clippy::too_many_arguments)]
            #[oai(path = $list_path, method = "get", operation_id = $list_id, tag = $tag)]
            async fn list(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// A SCIM filter, e.g. `userName eq "bjensen"`.
                filter: Query<Option<String>>,
                /// The attribute to sort by.
                #[oai(name = "sortBy")]
                sort_by: Query<Option<String>>,
                /// `ascending` (default) or `descending`.
                #[oai(name = "sortOrder")]
                sort_order: Query<Option<String>>,
                /// 1-based index of the first result (values below 1 mean 1).
                #[oai(name = "startIndex")]
                start_index: Query<Option<String>>,
                /// Page size (negative means 0; larger than the maximum means the maximum).
                count: Query<Option<String>>,
                /// RFC 9865 cursor (empty for the first page), where supported.
                cursor: Query<Option<String>>,
                /// Comma-separated attributes to return.
                attributes: Query<Option<String>>,
                /// Comma-separated attributes to leave out.
                #[oai(name = "excludedAttributes")]
                excluded_attributes: Query<Option<String>>,
            ) -> ScimResponse<ListDoc> {
                let p = ListParams {
                    filter: filter.0,
                    sort_by: sort_by.0,
                    sort_order: sort_order.0,
                    start_index: start_index.0,
                    count: count.0,
                    cursor: cursor.0,
                    attributes: attributes.0,
                    excluded_attributes: excluded_attributes.0,
                };
                ops::list(&auth.0, req, $kind, p).await.into()
            }

            /// Create a resource (RFC 7644 §3.3).
            #[oai(path = $list_path, method = "post", operation_id = $create_id, tag = $tag)]
            async fn create(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// Comma-separated attributes to return.
                attributes: Query<Option<String>>,
                /// Comma-separated attributes to leave out.
                #[oai(name = "excludedAttributes")]
                excluded_attributes: Query<Option<String>>,
                body: ScimBody<$schema>,
            ) -> ScimResponse<CreateDoc<$schema>> {
                ops::create(
                    &auth.0,
                    req,
                    $kind,
                    body.into_inner(),
                    projection(&attributes.0, &excluded_attributes.0),
                )
                .await
                .into()
            }

            /// Read a resource (RFC 7644 §3.4.1).
            #[allow(clippy::too_many_arguments)]
            #[oai(path = $item_path, method = "get", operation_id = $get_id, tag = $tag)]
            async fn get(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// The resource id.
                id: Path<String>,
                /// Comma-separated attributes to return.
                attributes: Query<Option<String>>,
                /// Comma-separated attributes to leave out.
                #[oai(name = "excludedAttributes")]
                excluded_attributes: Query<Option<String>>,
                /// Answer 304 when the current version is listed.
                #[oai(name = "If-None-Match")]
                if_none_match: Header<Option<String>>,
            ) -> ScimResponse<ReadDoc<$schema>> {
                ops::get(
                    &auth.0,
                    req,
                    $kind,
                    &id.0,
                    projection(&attributes.0, &excluded_attributes.0),
                    if_none_match.0.as_deref(),
                )
                .await
                .into()
            }

            /// Replace a resource (RFC 7644 §3.5.1).
            #[allow(clippy::too_many_arguments)]
            #[oai(path = $item_path, method = "put", operation_id = $replace_id, tag = $tag)]
            async fn replace(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// The resource id.
                id: Path<String>,
                /// Comma-separated attributes to return.
                attributes: Query<Option<String>>,
                /// Comma-separated attributes to leave out.
                #[oai(name = "excludedAttributes")]
                excluded_attributes: Query<Option<String>>,
                /// Apply only if the current version is listed (else 412).
                #[oai(name = "If-Match")]
                if_match: Header<Option<String>>,
                body: ScimBody<$schema>,
            ) -> ScimResponse<ReplaceDoc<$schema>> {
                ops::replace(
                    &auth.0,
                    req,
                    $kind,
                    &id.0,
                    body.into_inner(),
                    if_match.0.as_deref(),
                    projection(&attributes.0, &excluded_attributes.0),
                )
                .await
                .into()
            }

            /// Modify a resource with a PatchOp (RFC 7644 §3.5.2).
            #[allow(clippy::too_many_arguments)]
            #[oai(path = $item_path, method = "patch", operation_id = $patch_id, tag = $tag)]
            async fn patch(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// The resource id.
                id: Path<String>,
                /// Comma-separated attributes to return.
                attributes: Query<Option<String>>,
                /// Comma-separated attributes to leave out.
                #[oai(name = "excludedAttributes")]
                excluded_attributes: Query<Option<String>>,
                /// Apply only if the current version is listed (else 412).
                #[oai(name = "If-Match")]
                if_match: Header<Option<String>>,
                body: ScimBody<PatchOpSchema>,
            ) -> ScimResponse<PatchDoc<$schema>> {
                ops::patch(
                    &auth.0,
                    req,
                    $kind,
                    &id.0,
                    body.into_inner(),
                    if_match.0.as_deref(),
                    projection(&attributes.0, &excluded_attributes.0),
                )
                .await
                .into()
            }

            /// Delete a resource (RFC 7644 §3.6).
            #[oai(path = $item_path, method = "delete", operation_id = $delete_id, tag = $tag)]
            async fn delete(
                &self,
                auth: BearerAuth,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                /// The resource id.
                id: Path<String>,
                /// Delete only if the current version is listed (else 412).
                #[oai(name = "If-Match")]
                if_match: Header<Option<String>>,
            ) -> ScimResponse<DeleteDoc> {
                ops::delete(&auth.0, $kind, &id.0, if_match.0.as_deref())
                    .await
                    .into()
            }

            /// Search with a SearchRequest body (RFC 7644 §3.4.3).
            #[oai(path = $search_path, method = "post", operation_id = $search_id, tag = $tag)]
            async fn search(
                &self,
                auth: BearerAuth,
                req: &Request,
                /// The source slug.
                #[oai(name = "source")]
                _source: Path<String>,
                body: ScimBody<SearchRequestSchema>,
            ) -> ScimResponse<ListDoc> {
                ops::search(&auth.0, req, Some($kind), body.into_inner())
                    .await
                    .into()
            }
        }
    };
}

resource_api!(
    UsersApi,
    ResourceKind::User,
    UserSchema,
    "ApiTags::Users",
    list = "/scim/:source/v2/Users",
    item = "/scim/:source/v2/Users/:id",
    search = "/scim/:source/v2/Users/.search",
    ids = [
        "listUsers",
        "createUser",
        "getUser",
        "replaceUser",
        "patchUser",
        "deleteUser",
        "searchUsers"
    ]
);

resource_api!(
    GroupsApi,
    ResourceKind::Group,
    GroupSchema,
    "ApiTags::Groups",
    list = "/scim/:source/v2/Groups",
    item = "/scim/:source/v2/Groups/:id",
    search = "/scim/:source/v2/Groups/.search",
    ids = [
        "listGroups",
        "createGroup",
        "getGroup",
        "replaceGroup",
        "patchGroup",
        "deleteGroup",
        "searchGroups"
    ]
);

/// Root search, Bulk, discovery and `/Me`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceApi;

fn me_not_implemented() -> ScimResponse<MeDoc> {
    ScimResponse::new(Reply::error(&ScimError::new(
        501,
        "/Me is not supported: bearer tokens identify a source, not a user",
    )))
}

#[OpenApi]
impl ServiceApi {
    /// Search Users and Groups together (RFC 7644 §3.4.3).
    #[oai(
        path = "/scim/:source/v2/.search",
        method = "post",
        operation_id = "searchAll",
        tag = "ApiTags::Operations"
    )]
    async fn search_all(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
        body: ScimBody<SearchRequestSchema>,
    ) -> ScimResponse<ListDoc> {
        ops::search(&auth.0, req, None, body.into_inner())
            .await
            .into()
    }

    /// Several operations in one request (RFC 7644 §3.7), with `bulkId` cross-references.
    #[oai(
        path = "/scim/:source/v2/Bulk",
        method = "post",
        operation_id = "bulk",
        tag = "ApiTags::Operations"
    )]
    async fn bulk(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
        body: ScimBody<BulkRequestSchema>,
    ) -> ScimResponse<BulkDoc> {
        let _report = FiredReport(&auth.0);
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        bulk::run(
            &auth.0.app.config.bulk,
            &auth.0.service,
            auth.0.source.patch_response,
            &base,
            body.into_inner(),
        )
        .await
        .map(Reply::ok)
        .into()
    }

    /// The service provider's configuration (RFC 7644 §4).
    #[oai(
        path = "/scim/:source/v2/ServiceProviderConfig",
        method = "get",
        operation_id = "getServiceProviderConfig",
        tag = "ApiTags::Discovery"
    )]
    async fn spc(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<DiscoveryDoc<SpcSchema>> {
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        let docs = format!("{}/docs", origin(req, &auth.0.app));
        ScimResponse::new(Reply::ok(discovery::service_provider_config(
            &auth.0.app,
            &auth.0.source,
            &base,
            &docs,
        )))
    }

    /// The resource types (RFC 7644 §4).
    #[oai(
        path = "/scim/:source/v2/ResourceTypes",
        method = "get",
        operation_id = "listResourceTypes",
        tag = "ApiTags::Discovery"
    )]
    async fn resource_types(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<DiscoveryDoc<ListResponseSchema>> {
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        ScimResponse::new(Reply::ok(discovery::resource_types(&auth.0.source, &base)))
    }

    /// One resource type.
    #[oai(
        path = "/scim/:source/v2/ResourceTypes/:id",
        method = "get",
        operation_id = "getResourceType",
        tag = "ApiTags::Discovery"
    )]
    async fn resource_type(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
        /// `User` or `Group`.
        id: Path<String>,
    ) -> ScimResponse<DiscoveryDoc<ResourceTypeSchema>> {
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        discovery::resource_type(&auth.0.source, &base, &id.0)
            .map(Reply::ok)
            .into()
    }

    /// The schemas (RFC 7643 §7).
    #[oai(
        path = "/scim/:source/v2/Schemas",
        method = "get",
        operation_id = "listSchemas",
        tag = "ApiTags::Discovery"
    )]
    async fn schemas(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<DiscoveryDoc<ListResponseSchema>> {
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        ScimResponse::new(Reply::ok(discovery::schemas(&auth.0.source, &base)))
    }

    /// One schema, by URN.
    #[oai(
        path = "/scim/:source/v2/Schemas/:id",
        method = "get",
        operation_id = "getSchema",
        tag = "ApiTags::Discovery"
    )]
    async fn schema(
        &self,
        auth: BearerAuth,
        req: &Request,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
        /// The schema URN.
        id: Path<String>,
    ) -> ScimResponse<DiscoveryDoc<SchemaSchema>> {
        let base = base_url(req, &auth.0.app, &auth.0.source.slug);
        discovery::schema(&auth.0.source, &base, &id.0)
            .map(Reply::ok)
            .into()
    }

    /// `/Me` (RFC 7644 §3.11) is not implemented.
    #[oai(
        path = "/scim/:source/v2/Me",
        method = "get",
        operation_id = "getMe",
        tag = "ApiTags::Operations"
    )]
    async fn me_get(
        &self,
        _auth: BearerAuth,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<MeDoc> {
        me_not_implemented()
    }

    /// `/Me` (RFC 7644 §3.11) is not implemented.
    #[oai(
        path = "/scim/:source/v2/Me",
        method = "post",
        operation_id = "createMe",
        tag = "ApiTags::Operations"
    )]
    async fn me_post(
        &self,
        _auth: BearerAuth,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<MeDoc> {
        me_not_implemented()
    }

    /// `/Me` (RFC 7644 §3.11) is not implemented.
    #[oai(
        path = "/scim/:source/v2/Me",
        method = "put",
        operation_id = "replaceMe",
        tag = "ApiTags::Operations"
    )]
    async fn me_put(
        &self,
        _auth: BearerAuth,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<MeDoc> {
        me_not_implemented()
    }

    /// `/Me` (RFC 7644 §3.11) is not implemented.
    #[oai(
        path = "/scim/:source/v2/Me",
        method = "patch",
        operation_id = "patchMe",
        tag = "ApiTags::Operations"
    )]
    async fn me_patch(
        &self,
        _auth: BearerAuth,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<MeDoc> {
        me_not_implemented()
    }

    /// `/Me` (RFC 7644 §3.11) is not implemented.
    #[oai(
        path = "/scim/:source/v2/Me",
        method = "delete",
        operation_id = "deleteMe",
        tag = "ApiTags::Operations"
    )]
    async fn me_delete(
        &self,
        _auth: BearerAuth,
        /// The source slug.
        #[oai(name = "source")]
        _source: Path<String>,
    ) -> ScimResponse<MeDoc> {
        me_not_implemented()
    }
}
