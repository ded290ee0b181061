//! SCIM request bodies and responses as poem-openapi types.
//!
//! poem-openapi's `Json` payload compares content types exactly and answers errors in plain
//! text; SCIM clients send `application/scim+json; charset=utf-8` and need SCIM Error bodies.
//! [`ScimBody`] accepts any JSON media type (and a missing one), and [`ScimResponse`] renders
//! every outcome, including extractor failures, as `application/scim+json`. The documented
//! responses of each operation come from a [`Doc`] marker type.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaRequest, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef,
    Registry,
};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};
use scimd_core::{ScimError, ScimType, Version};
use serde_json::Value;
use std::marker::PhantomData;

/// The SCIM media type (RFC 7644 §3.1).
pub const SCIM_JSON: &str = "application/scim+json";
/// What scimd sends as `Content-Type`.
pub const SCIM_JSON_UTF8: &str = "application/scim+json; charset=utf-8";

/// Whether a `Content-Type` is JSON: `application/json`, `application/scim+json` or any other
/// `application/*+json`, with any parameters.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.strip_prefix("application/") {
        Some(sub) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

/// The challenge of a request without a bearer token (RFC 6750 §3).
pub const CHALLENGE: &str = "Bearer realm=\"scimd\"";
/// The challenge of a request whose bearer token was refused (RFC 6750 §3.1).
pub const CHALLENGE_INVALID: &str = "Bearer realm=\"scimd\", error=\"invalid_token\"";

/// A refused bearer token: answered 401 with [`CHALLENGE_INVALID`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(pub ScimError);

impl InvalidToken {
    /// Wraps the 401 as a poem error.
    pub fn into_poem(e: ScimError) -> poem::Error {
        poem::Error::new(InvalidToken(e), StatusCode::UNAUTHORIZED)
    }
}

/// An error raised while extracting a request, carrying the SCIM error to answer with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScimRejection(pub ScimError);

impl ScimRejection {
    /// Wraps a SCIM error as a poem error with the same status.
    pub fn into_poem(e: ScimError) -> poem::Error {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        poem::Error::new(ScimRejection(e), status)
    }
}

/// A request body that must be a JSON object, in any JSON media type.
#[derive(Debug, Clone)]
pub struct ScimBody<S: SchemaName>(pub Value, PhantomData<S>);

impl<S: SchemaName> ScimBody<S> {
    /// The parsed JSON.
    pub fn into_inner(self) -> Value {
        self.0
    }
}

/// A named schema in `components/schemas` (filled from the schema registry, see
/// [`crate::http::openapi`]).
pub trait SchemaName: Send + Sync + 'static {
    /// The component name.
    const NAME: &'static str;
}

macro_rules! schema_names {
    ($($(#[$doc:meta])* $ty:ident = $name:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl SchemaName for $ty {
            const NAME: &'static str = $name;
        }
    )*};
}

schema_names! {
    /// A User resource.
    UserSchema = "User";
    /// A Group resource.
    GroupSchema = "Group";
    /// A PatchOp request.
    PatchOpSchema = "PatchOp";
    /// A SearchRequest.
    SearchRequestSchema = "SearchRequest";
    /// A ListResponse.
    ListResponseSchema = "ListResponse";
    /// A BulkRequest.
    BulkRequestSchema = "BulkRequest";
    /// A BulkResponse.
    BulkResponseSchema = "BulkResponse";
    /// The ServiceProviderConfig.
    SpcSchema = "ServiceProviderConfig";
    /// A ResourceType.
    ResourceTypeSchema = "ResourceType";
    /// A Schema.
    SchemaSchema = "Schema";
    /// A SCIM Error.
    ErrorSchema = "Error";
}

/// Every component name the operations refer to. poem-openapi insists that referenced schemas
/// are registered; these placeholders are replaced by the real schemas in
/// [`crate::http::openapi::document`].
const COMPONENTS: &[&str] = &[
    UserSchema::NAME,
    GroupSchema::NAME,
    PatchOpSchema::NAME,
    SearchRequestSchema::NAME,
    ListResponseSchema::NAME,
    BulkRequestSchema::NAME,
    BulkResponseSchema::NAME,
    SpcSchema::NAME,
    ResourceTypeSchema::NAME,
    SchemaSchema::NAME,
    ErrorSchema::NAME,
];

fn register_components(registry: &mut Registry) {
    for name in COMPONENTS {
        registry
            .schemas
            .entry((*name).to_string())
            .or_insert_with(|| MetaSchema::new("object"));
    }
}

fn reference(name: &str) -> MetaSchemaRef {
    MetaSchemaRef::Reference(name.to_string())
}

impl<'a, S: SchemaName> ApiExtractor<'a> for ScimBody<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_components(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![
                MetaMediaType {
                    content_type: SCIM_JSON,
                    schema: reference(S::NAME),
                },
                MetaMediaType {
                    content_type: "application/json",
                    schema: reference(S::NAME),
                },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if let Some(ct) = request.content_type()
            && !is_json_media_type(ct)
        {
            return Err(ScimRejection::into_poem(ScimError::new(
                415,
                format!("Content-Type {ct} is not supported; send {SCIM_JSON} or application/json"),
            )));
        }
        let bytes = body.take()?.into_vec().await.map_err(|e| {
            ScimRejection::into_poem(ScimError::invalid_syntax(format!(
                "the request body could not be read: {e}"
            )))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimRejection::into_poem(ScimError::invalid_syntax(
                "the request needs a JSON body",
            )));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimRejection::into_poem(ScimError::invalid_syntax(format!(
                "the request body is not valid JSON: {e}"
            )))
        })?;
        if !value.is_object() {
            return Err(ScimRejection::into_poem(ScimError::invalid_syntax(
                "the request body must be a JSON object",
            )));
        }
        Ok(ScimBody(value, PhantomData))
    }
}

/// What an operation documents: its responses.
pub trait Doc: Send + 'static {
    /// The documented responses.
    fn responses() -> Vec<MetaResponse>;
}

/// Builds documented responses: `ok` are the success responses, `errors` the error statuses.
pub fn responses(ok: Vec<MetaResponse>, errors: &[u16]) -> Vec<MetaResponse> {
    let mut out = ok;
    for &status in errors {
        out.push(MetaResponse {
            description: error_description(status),
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: SCIM_JSON,
                schema: reference(ErrorSchema::NAME),
            }],
            headers: if status == 401 {
                vec![header_doc(
                    "WWW-Authenticate",
                    "`Bearer realm=\"scimd\"`: the bearer token is missing, invalid, expired or revoked, or belongs to another source.",
                )]
            } else if status == 503 {
                vec![header_doc("Retry-After", "Seconds after which to retry.")]
            } else {
                vec![]
            },
        });
    }
    out
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => {
            "Invalid request (`scimType` says why: invalidFilter, invalidSyntax, invalidValue, invalidPath, noTarget, mutability, tooMany, invalidCursor…)."
        }
        401 => "Missing or invalid bearer token.",
        404 => "No such resource in this source.",
        405 => "The method is not allowed on this endpoint.",
        409 => "A uniqueness conflict (`scimType: uniqueness`).",
        412 => "`If-Match` does not match the current version.",
        413 => "The request body, or the number of Bulk operations, exceeds the advertised limit.",
        415 => "The request body is not JSON.",
        500 => "An internal error.",
        501 => "Not implemented.",
        503 => "The backend is unavailable or the request timed out.",
        _ => "Error.",
    }
}

/// A documented response header.
pub fn header_doc(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_string(),
        description: Some(description.to_string()),
        required: false,
        deprecated: false,
        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
    }
}

/// A documented success response with a SCIM JSON body.
pub fn ok_response(
    status: u16,
    description: &'static str,
    schema: Option<&str>,
    headers: Vec<MetaHeader>,
) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: schema
            .map(|s| {
                vec![MetaMediaType {
                    content_type: SCIM_JSON,
                    schema: reference(s),
                }]
            })
            .unwrap_or_default(),
        headers,
    }
}

/// What a handler answers: a status, an optional JSON body and the SCIM headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, if any.
    pub body: Option<Value>,
    /// `ETag`.
    pub etag: Option<Version>,
    /// `Location`.
    pub location: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` challenge, sent with every 401.
    pub challenge: Option<&'static str>,
}

impl Reply {
    /// A 200 with a body.
    pub fn ok(body: Value) -> Reply {
        Reply::with_status(200, Some(body))
    }

    /// A response with a status and optional body.
    pub fn with_status(status: u16, body: Option<Value>) -> Reply {
        Reply {
            status,
            body,
            etag: None,
            location: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// A SCIM error response.
    pub fn error(e: &ScimError) -> Reply {
        Reply {
            status: e.status,
            body: Some(e.to_json()),
            etag: None,
            location: None,
            retry_after: e.retry_after,
            challenge: (e.status == 401).then_some(CHALLENGE),
        }
    }

    /// Sets `ETag`.
    pub fn etag(mut self, v: Version) -> Reply {
        self.etag = Some(v);
        self
    }

    /// Sets `Location`.
    pub fn location(mut self, l: String) -> Reply {
        self.location = Some(l);
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = Response::builder().status(status);
        if let Some(v) = self.etag {
            resp = resp.header(header::ETAG, v.etag());
        }
        if let Some(l) = &self.location
            && let Ok(h) = HeaderValue::from_str(l)
        {
            resp = resp.header(header::LOCATION, h);
        }
        if let Some(s) = self.retry_after {
            resp = resp.header(header::RETRY_AFTER, s.to_string());
        }
        if let Some(c) = self.challenge {
            resp = resp.header(header::WWW_AUTHENTICATE, c);
        }
        match self.body {
            Some(body) => resp
                .content_type(SCIM_JSON_UTF8)
                .body(serde_json::to_vec(&body).unwrap_or_default()),
            None => resp.finish(),
        }
    }
}

/// The answer of a SCIM operation, documented by `D`.
#[derive(Debug)]
pub struct ScimResponse<D: Doc>(pub Reply, PhantomData<D>);

impl<D: Doc> ScimResponse<D> {
    /// Wraps a reply.
    pub fn new(reply: Reply) -> Self {
        ScimResponse(reply, PhantomData)
    }
}

impl<D: Doc> From<Result<Reply, ScimError>> for ScimResponse<D> {
    fn from(r: Result<Reply, ScimError>) -> Self {
        ScimResponse::new(r.unwrap_or_else(|e| Reply::error(&e)))
    }
}

impl<D: Doc> IntoResponse for ScimResponse<D> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// Turns any extraction failure into the SCIM error it stands for.
pub fn scim_error_of(err: &poem::Error) -> ScimError {
    if let Some(ScimRejection(e)) = err.downcast_ref::<ScimRejection>() {
        return e.clone();
    }
    if let Some(InvalidToken(e)) = err.downcast_ref::<InvalidToken>() {
        return e.clone();
    }
    let status = err.status().as_u16();
    match status {
        401 => ScimError::new(
            401,
            "A bearer token is required (Authorization: Bearer <token>)",
        ),
        415 => ScimError::new(415, err.to_string()),
        400 => ScimError::typed(ScimType::InvalidSyntax, err.to_string()),
        s => ScimError::new(s, err.to_string()),
    }
}

impl<D: Doc> ApiResponse for ScimResponse<D> {
    const BAD_REQUEST_HANDLER: bool = true;

    fn meta() -> MetaResponses {
        MetaResponses {
            responses: D::responses(),
        }
    }

    fn register(registry: &mut Registry) {
        register_components(registry);
    }

    fn from_parse_request_error(err: poem::Error) -> Self {
        let mut reply = Reply::error(&scim_error_of(&err));
        if err.downcast_ref::<InvalidToken>().is_some() {
            reply.challenge = Some(CHALLENGE_INVALID);
        }
        ScimResponse::new(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognized_with_parameters() {
        for ok in [
            "application/json",
            "application/scim+json",
            "application/scim+json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn error_replies_are_scim_json_with_string_status_and_challenge() {
        let r = Reply::error(&ScimError::new(401, "no")).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).unwrap(),
            SCIM_JSON_UTF8
        );
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
