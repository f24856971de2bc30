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
        match to_vec(&self.0, INITIAL_CAPACITY) {
            Ok(buf) => ([(header::CONTENT_TYPE, APPLICATION_JSON), NO_STORE], buf).into_response(),
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

/// `value` as compact JSON in which every string's format and control characters are `\uXXXX` escapes
/// ([`VisibleJson`]), into a buffer of `capacity` to start with.
///
/// # Errors
/// Only a type that cannot be JSON (a map with non-string keys).
pub fn to_vec<T: Serialize + ?Sized>(value: &T, capacity: usize) -> serde_json::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(capacity);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut buf,
        VisibleJson,
    ))?;
    Ok(buf)
}

/// serde_json's compact format, with the characters a display must not show as they are
/// (`text::shown_as_code`: bidi controls such as U+202E, zero-width characters, DEL and C1 controls; C0
/// controls serde_json escapes itself) written as `\uXXXX` escapes. The string a client decodes is the
/// same; the bytes on the wire, what `curl` prints, hold no invisible character.
#[derive(Debug, Clone, Copy)]
pub struct VisibleJson;

impl serde_json::ser::Formatter for VisibleJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.bytes().all(|b| b < 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if crate::text::shown_as_code(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
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

    /// Format and control characters are `\u` escapes on the wire and decode to the same string; other
    /// text (right-to-left letters, emoji: a surrogate pair only for the escapes) is as it was.
    #[test]
    fn format_characters_are_escaped_on_the_wire() {
        let s = "a\u{202E}b\u{200B}c\u{7f}\u{85}\u{E0041}\n ש 😀 \"q\"";
        let wire = String::from_utf8(to_vec(&s, 0).unwrap()).unwrap();
        assert_eq!(
            wire,
            r#""a\u202eb\u200bc\u007f\u0085\udb40\udc41\n ש 😀 \"q\"""#
        );
        assert!(!wire.chars().any(crate::text::shown_as_code));
        assert_eq!(serde_json::from_str::<String>(&wire).unwrap(), s);
        let plain = serde_json::json!({"topic": "sensors/gh1/temp", "n": 1});
        assert_eq!(
            to_vec(&plain, 0).unwrap(),
            serde_json::to_vec(&plain).unwrap()
        );
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
