//! A JSON extractor whose rejections use the app's error shape instead of axum's plain text.

use crate::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;

/// `axum::Json`, but a malformed body becomes an [`AppError`] (400, SQLSTATE 22P02).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        AppError::bad_request(r.body_text())
    }
}
