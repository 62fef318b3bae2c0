//! The UI's static files, embedded in the binary at build time (`assets/`): the stylesheet,
//! htmx, and the script that follows a run live. No node toolchain, nothing remote.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use super::page::UiError;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

fn content_type(name: &str) -> Option<&'static str> {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => Some("text/javascript; charset=utf-8"),
        Some("css") => Some("text/css; charset=utf-8"),
        Some("svg") => Some("image/svg+xml"),
        _ => None,
    }
}

/// `GET /ui/assets/{file}`
pub async fn serve(Path(file): Path<String>) -> Response {
    let (Some(kind), Some(asset)) = (content_type(&file), Assets::get(&file)) else {
        return UiError::new(StatusCode::NOT_FOUND, format!("no asset `{file}`")).into_response();
    };
    let mut response = asset.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
