//! The 405 answer of a resource asked with a method it does not serve.

use actix_web::{
    http::header::{HeaderValue, ALLOW},
    web, ResponseError,
};

use crate::error::AppError;

/// The default service of an API resource: 405 with the `Allow` header RFC 9110
/// requires, naming the methods the resource serves (e.g. `"GET, POST"`).
pub(crate) fn allow_only(methods: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut response = AppError::MethodNotAllowed.error_response();
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(methods));
        response
    })
}
