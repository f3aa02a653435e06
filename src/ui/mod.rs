//! The embedded web UI: a login page and the Webhooks page at `/`.
//!
//! The HTML, CSS and JavaScript are compiled into the binary, so `decnet api` and
//! `decnet serve` need nothing on disk. The page is a plain client of the public
//! admin API: it holds no privileges of its own, and every rule is enforced there.

use std::sync::OnceLock;

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse,
};
use sha2::{Digest, Sha256};

/// Scripts, styles, images and API calls from this origin only; no inline code, no
/// plugins, no framing, and forms can never post anywhere (the page submits them
/// with `fetch`, so a native submit could only leak the password into a URL).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// One embedded file and the path it is served at.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// Register the page and its assets (GET and HEAD; other methods get the API's 405).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (index, asset) in ASSETS.iter().enumerate() {
        let handler = move |req: HttpRequest| async move { serve(&req, asset, index) };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(handler))
                .route(web::head().to(handler))
                .default_service(crate::api::allow::allow_only("GET, HEAD")),
        );
    }
}

/// Strong validators, one per asset, hashed once: they change exactly when the
/// binary's copy of the file does.
fn etag(index: usize) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16])))
            .collect()
    });
    etags.get(index).map_or("", String::as_str)
}

fn serve(req: &HttpRequest, asset: &'static Asset, index: usize) -> HttpResponse {
    let etag = etag(index);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        // Revalidate every time: an upgraded binary must never run with a stale
        // script, and an unchanged one costs a 304.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
        .insert_header(("Cross-Origin-Resource-Policy", "same-origin"));
    if fresh {
        resp.finish()
    } else {
        resp.content_type(asset.content_type).body(asset.body)
    }
}
