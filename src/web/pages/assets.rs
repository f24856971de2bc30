//! The dashboard's static files (`web/static/`: style sheet, script, icon), embedded in the binary and
//! served at `/static/{file}` by `asset`, routed by `web/mod.rs` through the re-export in `pages`.

use crate::web::error::ApiError;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const STYLE_CSS: &str = include_str!("../../../web/static/style.css");
const APP_JS: &str = include_str!("../../../web/static/app.js");
const FAVICON_SVG: &str = include_str!("../../../web/static/favicon.svg");

/// `GET /static/{file}`: the embedded assets.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (ctype, body) = match file.as_str() {
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return Err(ApiError::not_found("no such file")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response())
}
