//! `Content-Encoding: gzip` (and `deflate`) request bodies, as RudderStack's SDKs send by
//! default and Segment's when asked: decompressed before any handler reads them, bounded by
//! `server.max_body_bytes` both before and after (a small bomb is a 413, not a gigabyte in
//! memory). Another encoding is a 415 that says which.

use super::{ApiError, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Read;

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body{what} is over the limit of {limit} bytes (server.max_body_bytes)"
        ),
    )
}

/// Decompresses, at most `limit` bytes out.
fn inflate(reader: impl Read, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad_request(
                "bad_encoding",
                format!("the compressed body does not decompress: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit, " decompressed"));
    }
    Ok(out)
}

pub async fn decompress(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let Some(enc) = encoding.filter(|e| !e.is_empty() && e != "identity") else {
        return next.run(req).await;
    };
    let limit = st.config.server.max_body_bytes;
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(limit, "").into_response(),
    };
    let plain = match enc.as_str() {
        "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&bytes[..]), limit),
        "deflate" => inflate(flate2::read::ZlibDecoder::new(&bytes[..]), limit),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "request bodies encoded as '{other}' are not accepted: send plain, gzip or deflate"
            ),
        )),
    };
    let plain = match plain {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    parts.headers.remove(header::CONTENT_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, plain.len().into());
    next.run(Request::from_parts(parts, Body::from(plain)))
        .await
}
