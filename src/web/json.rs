//! JSON answers: the API handlers' and the error body's response type.
//!
//! The same response as `axum::Json` (`application/json`, a 500 in plain text if serialization fails),
//! plus `Cache-Control: no-store`: a JSON answer is live data (and may sit behind the token), so no
//! browser or proxy keeps it. The API's routes (`/api/v1/*`, `/healthz`) and every JSON error (404, 405,
//! 401) answer with this type; the event stream and `/metrics` set the same header themselves. A
//! per-route layer would cost a boxed service per request.
//!
//! The body is written into a `Vec` rather than axum's `BytesMut` writer. serde_json makes about 80
//! small writes for one topic; through the writer each was a `BufMut::put_slice` call and a `memcpy`
//! call, about 4,000 of the 40,000 instructions the server spent on `GET /api/v1/topics/{topic}`
//! (callgrind, `bench/api-profile`; BENCHMARKS.md, scenario 5). A `Vec` takes them inline, and becomes
//! the body without a copy.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `no-store` on every JSON answer (see the module header); the API's other routes use it too.
pub const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Room for one topic's answer without growing; pages and large payloads grow it.
const INITIAL_CAPACITY: usize = 512;

/// A JSON response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => ([(header::CONTENT_TYPE, APPLICATION_JSON), NO_STORE], buf).into_response(),
            // Only a type that cannot be JSON fails here (a map with non-string keys): a bug, not input.
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                    NO_STORE,
                ],
                e.to_string(),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Status, content type and body; asserts `no-store`.
    async fn body(resp: Response) -> (StatusCode, String, String) {
        let status = resp.status();
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        let ctype = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ctype, String::from_utf8(bytes.to_vec()).unwrap())
    }

    const NO_STORE_PARTS: [(header::HeaderName, HeaderValue); 1] = [NO_STORE];

    #[tokio::test]
    async fn answers_like_axum_json_and_is_not_stored() {
        #[derive(Serialize)]
        struct T<'a> {
            topic: &'a str,
            n: u32,
        }
        let value = T {
            topic: "a/\"b\"\n<c>",
            n: 7,
        };
        let ours = body(Json(&value).into_response()).await;
        let axums = body((NO_STORE_PARTS, axum::Json(&value)).into_response()).await;
        assert_eq!(ours, axums);
        assert_eq!(ours.0, StatusCode::OK);
        assert_eq!(ours.1, "application/json");
        assert_eq!(ours.2, r#"{"topic":"a/\"b\"\n<c>","n":7}"#);
        // Larger than the initial capacity.
        let long = "x".repeat(10 * INITIAL_CAPACITY);
        let (_, _, text) = body(Json(&long).into_response()).await;
        assert_eq!(text.len(), long.len() + 2);
    }

    #[tokio::test]
    async fn a_value_that_is_not_json_is_a_500() {
        let mut map = BTreeMap::new();
        map.insert((1, 2), 3);
        let (status, ctype, text) = body(Json(&map).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ctype, "text/plain; charset=utf-8");
        assert!(text.contains("key must be a string"), "{text}");
    }
}
