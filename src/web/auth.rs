//! The optional bearer token (`[web] token_file`). When set, every request must carry it: as
//! `Authorization: Bearer TOKEN` (scripts), or as the `xymon_mqtt_token` cookie (browsers). Opening any
//! page once with `?token=TOKEN` sets that cookie (HttpOnly, SameSite=Strict).
//!
//! A tower layer rather than `axum::middleware::from_fn`: `from_fn` boxes the inner service and its
//! future on every request, which showed in the API benchmark (scenario 5). Here a request that passes
//! runs the inner service's own future unboxed; only the rare paths (the `?token=` cookie, a 401) box.

use super::error::ApiError;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub const COOKIE: &str = "xymon_mqtt_token";

/// Compares without an early exit, so timing does not reveal the length of a matching prefix.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What the token check decided for one request.
enum Access {
    /// No token configured, or a matching bearer token or cookie.
    Granted,
    /// A matching `?token=`: let it through and set the cookie on the response.
    SetCookie(HeaderValue),
    Denied,
}

fn check<B>(token: Option<&str>, req: &Request<B>) -> Access {
    let Some(token) = token else {
        return Access::Granted;
    };
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|v| same(v.trim(), token));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && same(v, token));
    if bearer || cookie {
        return Access::Granted;
    }
    let query = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "token" && same(&v, token))
        })
        .unwrap_or(false);
    if !query {
        return Access::Denied;
    }
    // A token that is not a valid header value cannot be set as a cookie (it could not be sent back as
    // one either): the request still passes, as it carried the right token.
    match HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        Ok(v) => Access::SetCookie(v),
        Err(_) => Access::Granted,
    }
}

fn unauthorized() -> Response {
    let mut resp =
        ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required").into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"xymon-mqtt\""),
    );
    resp
}

/// Requires the token (when one is configured) on every request that reaches the wrapped service.
#[derive(Clone)]
pub struct RequireTokenLayer {
    token: Option<Arc<str>>,
}

impl RequireTokenLayer {
    pub fn new(token: Option<&str>) -> Self {
        RequireTokenLayer {
            token: token.map(Arc::from),
        }
    }
}

impl<S> tower::Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;
    fn layer(&self, inner: S) -> RequireToken<S> {
        RequireToken {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    token: Option<Arc<str>>,
}

impl<S, B> tower::Service<Request<B>> for RequireToken<S>
where
    S: tower::Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match check(self.token.as_deref(), &req) {
            Access::Granted => Either::Left(self.inner.call(req)),
            Access::SetCookie(cookie) => {
                let fut = self.inner.call(req);
                Either::Right(Box::pin(async move {
                    let mut resp = fut.await?;
                    resp.headers_mut().append(header::SET_COOKIE, cookie);
                    Ok(resp)
                }))
            }
            Access::Denied => Either::Right(Box::pin(std::future::ready(Ok(unauthorized())))),
        }
    }
}
