//! What a request's body and query are read into: `axum`'s extractors, refusing with
//! [`ApiError`]'s shape — the field or parameter at fault named, a NUL character (which
//! PostgreSQL cannot store) refused where it is rather than failed on later.

use crate::error::{ApiError, described, json_body, with_field};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The most a request's body may hold (`routes::router` sets it for every extractor); one
/// longer is a 413 `body_too_large`.
pub const BODY_LIMIT: usize = 2 << 20;

/// `Json<T>` whose rejections use [`ApiError`]'s shape and name the offending field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = buffered(req, state).await?;
        // PostgreSQL cannot store a NUL character: say where it is instead of failing later.
        // JSON can only spell it `\u0000`, so the body is searched for that before anything is
        // walked.
        if aic_proto::text::may_hold_nul(&bytes) {
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(path) = aic_proto::text::nul_path(&value, "") {
                let message =
                    format!("{path} contains a NUL character (\\u0000), which cannot be stored");
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    message,
                )
                .at(path));
            }
        }
        if let Some(kind) = not_an_object(&bytes) {
            let message = format!("the body must be a JSON object ({{…}}), not {kind}");
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
            ));
        }
        // axum's own extractor: the content type, and a type error naming its field.
        let req = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            // Read again, on this rare path, to name the field in its own member too.
            Err(rejection @ JsonRejection::JsonDataError(_)) => Err(json_body::<T>(&bytes)
                .err()
                .unwrap_or_else(|| json_rejection(rejection))),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// What JSON other than an object `bytes` hold, if they are such JSON: every body of the API
/// is an object, and serde would read an array into one by position (`["New name", …]` renamed
/// an automation), an order no document promises.
fn not_an_object(bytes: &[u8]) -> Option<&'static str> {
    let first = bytes.iter().find(|b| !b" \t\r\n".contains(b))?;
    let kind = match first {
        b'{' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "true or false",
        b'n' => "null",
        _ => "a number",
    };
    // Text that is no JSON at all is refused as such, where it fails.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .is_ok()
        .then_some(kind)
}

/// The request's body read whole (within [`BODY_LIMIT`]), and its parts, to build it again.
async fn buffered<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map_err(|r| match timed_out(&r) {
            Some(late) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", late),
            None => body_rejection(r.status(), r.body_text()),
        })?;
    Ok((parts, without_bom(bytes)))
}

/// `bytes` without the UTF-8 byte order mark some Windows tools put first (PowerShell's, .NET's
/// UTF-8 writers): JSON's RFC 8259 lets a reader ignore it, and read with it the body is
/// refused as "expected value at line 1 column 1", which says nothing of why.
fn without_bom(bytes: axum::body::Bytes) -> axum::body::Bytes {
    match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => bytes.slice_ref(rest),
        None => bytes,
    }
}

/// What the server said of a body that did not arrive in time (`aic_core::http`), if that is
/// why it could not be read.
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> Option<String> {
    std::iter::successors(Some(rejection), |e| e.source())
        .find(|e| e.is::<aic_core::http::BodyTimedOut>())
        .map(ToString::to_string)
}

/// An optional JSON body: none at all asks for `T`'s defaults; one sent is read as [`ApiJson`]
/// reads it (its content type, a NUL character, the field at fault) — whitespace alone is no
/// JSON, and is refused as any other body that is not.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = buffered(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let ApiJson(value) = ApiJson::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `Query<T>` whose rejections use [`ApiError`]'s shape: an unknown filter or a value of the
/// wrong type is a 422 `invalid_query` saying which, not a plain-text 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // PostgreSQL cannot store or compare a NUL character (`%00`): refused by name here, not
        // failed on in a query later.
        let pairs = url::form_urlencoded::parse(query.as_bytes());
        if let Some((name, _)) = pairs
            .into_iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let message = format!("{name} contains a NUL character (%00), which no filter takes");
            return Err(
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", message).at(name),
            );
        }
        // As axum's `Query` reads it, the parameter at fault named in `field` too.
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                described(&e),
            );
            with_field(err, &e)
        })
    }
}
fn json_rejection(r: JsonRejection) -> ApiError {
    body_rejection(r.status(), r.body_text())
}

fn body_rejection(status: StatusCode, message: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            format!(
                "the body is over the {} MiB a request may send",
                BODY_LIMIT >> 20
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "invalid_body", message),
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message),
    }
}
