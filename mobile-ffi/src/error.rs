//! The errors an app sees, typed by what it will do about them, and every conversion into them.

use fieldsync_core::client::ClientError;

use crate::store::StoreError;

/// Errors, typed by what the app will do about them.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FieldsyncError {
    /// The server could not be reached, is busy (408, 429, 502–504) or its disk is full (507): try
    /// later; everything stays in the outbox. `sync` has already retried a busy answer (429,
    /// 502–504) up to 3 times, after the server's `Retry-After` (or 0.2 s, doubling), waiting no
    /// more than 5 s in all; the message ends with the status, the tries and the wait asked for.
    #[error("offline: {message}")]
    Offline { message: String },
    /// The token is missing, expired or refused: refresh it and call `set_token`.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The server refused a document (a broken document, or one this user may not write). `sync`
    /// raises it only when the refusal names no document it pushed (that one's edits it sets aside,
    /// see `rejected_edits`, and goes on).
    #[error("rejected {doc}: {reason}")]
    Rejected { doc: String, reason: String },
    /// Bad input from the app: fix the call.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },
    /// No such document on this device: it never came, or it left the user's scope.
    #[error("not found: {id}")]
    NotFound { id: String },
    /// The local store failed (disk full, corrupt files).
    #[error("storage: {message}")]
    Storage { message: String },
    /// `cancel_sync` was called; the sync stopped between two rounds and can be resumed.
    #[error("sync cancelled")]
    Cancelled,
    #[error("internal error: {message}")]
    Internal { message: String },
}

pub type Result<T, E = FieldsyncError> = std::result::Result<T, E>;

impl From<StoreError> for FieldsyncError {
    fn from(e: StoreError) -> Self {
        FieldsyncError::Storage { message: e.to_string() }
    }
}

impl From<ClientError> for FieldsyncError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidInput { field, reason } => FieldsyncError::InvalidInput { field, reason },
            ClientError::NotFound(id) => FieldsyncError::NotFound { id },
            ClientError::AlreadyExists(id) => {
                FieldsyncError::InvalidInput { field: "id".into(), reason: format!("{id} exists already") }
            }
            ClientError::Forbidden(v) => FieldsyncError::InvalidInput {
                field: v.field.unwrap_or_else(|| "document".into()),
                reason: v.message,
            },
            ClientError::Corrupt(m) => FieldsyncError::Internal { message: m },
        }
    }
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> FieldsyncError {
    FieldsyncError::InvalidInput { field: field.into(), reason: reason.into() }
}
