//! The situation page: `GET /situation` (HTML) and its assets under
//! `GET /situation/assets/{file}` — the page's script and style and the
//! vendored chart library (`web/vendor/`, uPlot, MIT). Everything is
//! compiled into the binary: a node serves the page offline, with no CDN
//! and no files beside the binary.
//!
//! The page only reads this node's JSON API (`/v1/situation`,
//! `/v1/situation/history`, `/v1/quality`) from its own origin, so the
//! answers carry a strict `Content-Security-Policy` (`default-src 'self'`,
//! no inline script or style, no framing). Each answer has an `ETag` (a
//! blake3 digest of the bytes) and `Cache-Control: no-cache`: a browser
//! revalidates and gets `304` until the binary changes.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};

/// What the page and its assets may load: only this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file the page serves.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: Asset = Asset {
    name: "situation.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../web/situation.html"),
};

/// The files under `/situation/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "situation.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/situation.js"),
    },
    Asset {
        name: "situation.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/situation.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../web/favicon.svg"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/vendor/uplot-1.6.32/uPlot.min.css"),
    },
];

/// `GET /situation`: the page.
pub(super) async fn situation(headers: HeaderMap) -> Response {
    serve(&HTML, &headers)
}

/// `GET /situation/assets/{file}`: a script, style or icon of the page.
pub(super) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(a, &headers),
        None => ApiError::new(Code::NotFound, format!("no page asset {file:?}")).into_response(),
    }
}

/// The quoted entity tag of `bytes`: the first 128 bits of their blake3.
fn etag(bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes);
    let hex = hash.to_hex();
    format!("\"{}\"", hex.get(..32).unwrap_or(hex.as_str()))
}

/// Whether `If-None-Match` names `tag` (or is `*`).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset.bytes);
    let mut headers = HeaderMap::new();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_TYPE, asset.content_type),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, v);
    }
    if not_modified(request, &tag) {
        headers.remove(header::CONTENT_TYPE);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_this_module_serves_and_no_inline_code() {
        let html = std::str::from_utf8(HTML.bytes).unwrap();
        for part in html.split("/situation/assets/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "the page loads {name}, which is not served"
            );
        }
        for forbidden in [
            "<script>", "style=", "onclick", "onload", "http://", "https://",
        ] {
            assert!(!html.contains(forbidden), "the page contains {forbidden}");
        }
        for a in ASSETS {
            if a.name.starts_with("situation") {
                let text = std::str::from_utf8(a.bytes).unwrap();
                assert!(
                    !text.contains("http://") && !text.contains("https://"),
                    "{} refers to another origin",
                    a.name
                );
            }
        }
    }

    #[test]
    fn if_none_match_with_the_etag_is_not_modified() {
        let tag = etag(b"x");
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert!(not_modified(&h, &tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&h, &tag));
    }
}
