//! Errors shared by the commands and the API.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer of the API.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// Every way an API request can fail; each renders as an [`ErrorBody`],
/// `{"detail": "<message>"}`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    /// Missing, malformed, expired or forged credentials.
    #[error("Not authenticated")]
    NotAuthenticated,
    /// One message for an unknown user and a wrong password.
    #[error("Incorrect username or password")]
    InvalidCredentials,
    #[error("Insufficient permissions")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// The request's body did not arrive within its deadline.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body that is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A `Host` outside `DECNET_API_ALLOWED_HOSTS`.
    #[error("{0}")]
    MisdirectedRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// 429 with `Retry-After`: this client or this username must wait.
    #[error("{detail}")]
    Throttled {
        detail: String,
        retry_after_secs: u64,
    },
    /// 503 with `Retry-After`: the server is busy with requests of this kind.
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
    /// The cause is logged where it happens; the client learns nothing about it.
    #[error("Internal server error")]
    Internal,
}

impl AppError {
    pub fn not_found() -> Self {
        Self::NotFound("Not found".into())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotAuthenticated | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::Throttled {
            retry_after_secs, ..
        }
        | Self::Busy {
            retry_after_secs, ..
        } = self
        {
            resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        resp.json(ErrorBody {
            detail: self.to_string(),
        })
    }
}

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        tracing::error!(error = %redact_db_error(&e), "database error");
        Self::Internal
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        tracing::error!("blocking thread pool is gone");
        Self::Internal
    }
}

/// A database error as one line that never carries a connection string or password.
pub fn redact_db_error(e: &DbErr) -> String {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or_default();
    // Connection errors may echo the URL; cut anything that looks like credentials.
    text.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                crate::config::redact_url(w)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
