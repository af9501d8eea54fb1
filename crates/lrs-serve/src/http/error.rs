//! [`ServeError`] as an HTTP answer: its status code and a JSON [`ErrorBody`].

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::api::{ErrorBody, ErrorDetail};
use crate::error::ServeError;

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// Why a request body could not be read: over the size limit (413) or anything else.
pub fn body_error(rejection: &BytesRejection, max: usize) -> ServeError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ServeError::BodyTooLarge { max }
    } else {
        ServeError::InvalidRequest(format!("cannot read the request body: {rejection}"))
    }
}

/// Parses a JSON body: not JSON at all is a 400, JSON of the wrong shape a 422.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ServeError> {
    serde_json::from_slice(bytes).map_err(|e| ServeError::BadJson {
        shape: e.classify() == serde_json::error::Category::Data,
        reason: e.to_string(),
    })
}
