//! Importing a customer file into a team: the one place `fieldsync import` and `POST /v1/import`
//! ([`crate::routes::import`]) perform what [`fieldsync_exchange::import::plan`] decides.
//!
//! Nothing is written unless every row can be: a file with one refused row writes nothing and
//! its report lists each refused row, so a person fixes the sheet and imports it again (the
//! import is idempotent, so a second run after a partial one changes only what is left). The
//! writes are server writes in batches of [`BATCH`] customers, each atomic and durable, reaching
//! the phones through sync like any server change.

use fieldsync_core::engine::{SyncEngine, SyncError};
use fieldsync_core::storage::Storage;
use fieldsync_exchange::columns::{HeaderError, Mapping};
use fieldsync_exchange::import::{self, Report, TeamView};
use fieldsync_exchange::table::{self, FileError, Format, Limits};

/// Customers written per atomic batch.
pub const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read: nothing was written.
    #[error(transparent)]
    File(#[from] FileError),
    /// Its header has no name or position column, or one twice: nothing was written.
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportRequest<'a> {
    pub team: &'a str,
    pub bytes: &'a [u8],
    /// `None`: from the bytes (a ZIP is a workbook, anything else CSV).
    pub format: Option<Format>,
    pub dry_run: bool,
    /// Who imports (tier overrides name them).
    pub by: &'a str,
    pub now_ms: i64,
    pub limits: Limits,
}

/// Reads, decides and (unless a dry run, or a row is refused) writes; `progress(done, total)` is
/// called after each batch.
pub fn import_customers<S: Storage>(
    engine: &SyncEngine<S>,
    req: &ImportRequest<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, ImportError> {
    let format = req.format.unwrap_or_else(|| Format::sniff(req.bytes));
    let table = table::read(req.bytes, format, &req.limits)?;
    let mapping = Mapping::from_header(&table.header)?;
    let view = TeamView::of(engine.team_documents(req.team)?);
    let plan = import::plan(&table, &mapping, &view, req.by, req.now_ms);
    if req.dry_run || !plan.refused.is_empty() {
        return Ok(plan.report(false));
    }
    let writes = plan.writes();
    let total = writes.len();
    let mut done = 0;
    progress(0, total);
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() {
        let batch: Vec<_> = writes.by_ref().take(BATCH).collect();
        engine.apply_server_writes(req.team, &batch, req.now_ms)?;
        done += batch.len();
        progress(done, total);
    }
    Ok(plan.report(true))
}
