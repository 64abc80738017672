//! `fieldsync-device`: a fieldsync device (a rep's phone, a manager's tablet) on the command line.
//!
//! A thin shell over [`fieldsync_mobile::FieldsyncClient`]: it parses arguments, calls the library,
//! and prints one JSON document to stdout. Errors are one JSON line on stderr,
//! `{"error": KIND, "message": TEXT, ...}`, with an exit code per kind (see [`exit_code`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use fieldsync_mobile::fieldsync_core::docs::Tier;
use fieldsync_mobile::{
    CheckInResult, CustomerNear, FieldsyncClient, FieldsyncError, GpsFix, RejectedEditRecord, SyncProgress,
    SyncStatus, SyncSummary,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

const AFTER_HELP: &str = "\
Every command prints one JSON document to stdout. Errors print one JSON line to stderr,
{\"error\": KIND, \"message\": TEXT}, and exit with a code per kind:
  2 invalid_input   3 offline   4 unauthorized   5 rejected   6 storage   7 cancelled   8 not_found
  1 internal

Times (--start, --time) are epoch milliseconds, RFC 3339 (2026-11-30T09:00:00Z) or `now`.
Everything but `sync` works offline; the store remembers its user, so --token is needed on first
use (it decides whose store this is) and to sync.

Example:
  fieldsync-device --store ./alice --token \"$ALICE\" sync
  fieldsync-device --store ./alice customers-near --lat 45.764 --lon 4.8357 --radius-m 3000
  fieldsync-device --store ./alice plan --customer cust-0001 --start now --minutes 45";

/// Help heading of the options every command takes.
const DEVICE: &str = "Device options";

/// A fieldsync device on the command line: plan, check in, take notes and sync, offline first.
#[derive(Debug, Parser)]
#[command(name = "fieldsync-device", version, after_help = AFTER_HELP)]
struct Cli {
    /// The device's local store directory, created on first use (required).
    #[arg(long, global = true, env = "FIELDSYNC_STORE", value_name = "DIR", help_heading = DEVICE)]
    store: Option<PathBuf>,
    /// The sync server's base URL.
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        help_heading = DEVICE
    )]
    server: String,
    /// Bearer token (JWT). The first one decides whose store this is; afterwards it is only needed
    /// to sync.
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = DEVICE
    )]
    token: Option<String>,
    /// Print compact JSON (one line) instead of indented JSON.
    #[arg(long, global = true, help_heading = DEVICE)]
    compact: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plan a visit to a customer for the signed-in rep; prints the planned visit.
    Plan {
        /// The customer to visit (e.g. cust-0001).
        #[arg(long)]
        customer: String,
        /// When the visit starts: epoch ms, RFC 3339 or `now`.
        #[arg(long, value_parser = parse_time, allow_negative_numbers = true)]
        start: i64,
        /// How long it is planned to last.
        #[arg(long)]
        minutes: u32,
    },
    /// List the visits planned to start within a day of the team's time zone (default: today) or
    /// within [--from, --to), in time order.
    Visits {
        /// A day, YYYY-MM-DD, in --timezone.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        day: Option<jiff::civil::Date>,
        /// The time zone days are counted in: the same default as `day`'s.
        #[arg(long, default_value = TEAM_TIMEZONE)]
        timezone: String,
        /// Start of the range: epoch ms (inclusive), RFC 3339 or `now`.
        #[arg(long, requires = "to", value_parser = parse_time, allow_negative_numbers = true)]
        from: Option<i64>,
        /// End of the range: epoch ms (exclusive), RFC 3339 or `now`.
        #[arg(long, requires = "from", value_parser = parse_time, allow_negative_numbers = true)]
        to: Option<i64>,
    },
    /// Check in at a visit's customer with a GPS fix (WGS-84); prints the visit and the
    /// verification computed on the spot (the server's verdict arrives with the next sync).
    CheckIn {
        /// The visit.
        #[arg(long)]
        visit: String,
        /// Latitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        /// Accuracy radius of the fix in metres.
        #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
        accuracy: f64,
        /// Device time of the fix: epoch ms, RFC 3339 or `now` (default).
        #[arg(long, value_parser = parse_time, allow_negative_numbers = true)]
        time: Option<i64>,
        /// The phone reported a simulated (mock) location.
        #[arg(long)]
        mock: bool,
    },
    /// Replace the notes of a visit (--visit) or of a customer (--customer); prints the document.
    #[command(group(ArgGroup::new("target").required(true).args(["visit", "customer"])))]
    Note {
        /// The visit whose notes to replace.
        #[arg(long)]
        visit: Option<String>,
        /// The customer whose notes to replace.
        #[arg(long)]
        customer: Option<String>,
        /// The new notes (diffed into the shared text, so concurrent edits by others merge).
        #[arg(long)]
        text: String,
    },
    /// Check out of a visit with its outcome; the visit becomes completed. Prints the visit.
    CheckOut {
        /// The visit.
        #[arg(long)]
        visit: String,
        /// What came of it.
        #[arg(long)]
        outcome: String,
        /// The agreed next step.
        #[arg(long, default_value = "")]
        next_step: String,
        /// Device time of the check-out: epoch ms, RFC 3339 or `now` (default).
        #[arg(long, value_parser = parse_time, allow_negative_numbers = true)]
        time: Option<i64>,
    },
    /// Move a customer forward: its follow-up status and/or opportunity stage. Prints the customer.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["follow_up", "stage"])))]
    CustomerStatus {
        /// The customer.
        #[arg(long)]
        customer: String,
        /// New follow-up status (e.g. call_back, quote_sent).
        #[arg(long)]
        follow_up: Option<String>,
        /// New opportunity stage (e.g. qualified, proposal, won).
        #[arg(long)]
        stage: Option<String>,
    },
    /// Customers on this device within a radius of a point, nearest first, each with its distance.
    CustomersNear {
        /// Latitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        /// Search radius in metres.
        #[arg(long, default_value_t = 5000.0, allow_negative_numbers = true)]
        radius_m: f64,
        /// Only these tiers (repeatable: --tier A --tier B).
        #[arg(long, value_enum, ignore_case = true)]
        tier: Vec<TierArg>,
        /// Only these follow-up statuses (repeatable).
        #[arg(long)]
        status: Vec<String>,
    },
    /// Sync with the server (needs a token): push the outbox, pull what changed. Prints the
    /// summary; progress goes to stderr.
    Sync,
    /// What is waiting: outbox size, last sync, device id, number of documents.
    #[command(visible_alias = "status")]
    Pending,
    /// Edits the server refused (or that left this user's scope), kept with their reason.
    Rejected,
    /// Plan the signed-in rep's day offline: the visits planned that day are kept, due customers fill
    /// the rest by urgency, under opening hours. Prints the ordered stops and the dropped ones.
    Day {
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Where the day starts and ends.
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        /// The rep's time zone.
        #[arg(long, default_value = TEAM_TIMEZONE)]
        timezone: String,
        /// Working day, minutes after local midnight.
        #[arg(long, default_value_t = 510)]
        work_start_min: u32,
        #[arg(long, default_value_t = 1080)]
        work_end_min: u32,
    },
    /// The signed-in rep's customers that are due for a visit, most urgent first.
    Overdue,
    /// A document on this device (customer, visit, territory or plan) as JSON.
    Show {
        /// The document id.
        id: String,
    },
    /// Give a customer to another rep, optionally moving it to another territory (managers).
    /// Prints the customer.
    Reassign {
        /// The customer.
        #[arg(long)]
        customer: String,
        /// The new owner (a rep's user name).
        #[arg(long)]
        to: String,
        /// The territory to move the customer to (e.g. territory-bruno).
        #[arg(long)]
        territory: Option<String>,
    },
    /// Create a prospect found on the road, owned by the signed-in rep. Prints the customer.
    Prospect {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Latitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude in degrees.
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        /// Postal address.
        #[arg(long, default_value = "")]
        address: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TierArg {
    A,
    B,
    C,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Self {
        match t {
            TierArg::A => Tier::A,
            TierArg::B => Tier::B,
            TierArg::C => Tier::C,
        }
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Epoch milliseconds, an RFC 3339 timestamp, or `now`.
fn parse_time(s: &str) -> Result<i64, String> {
    if s == "now" {
        return Ok(now_ms());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    s.parse::<Timestamp>()
        .map(Timestamp::as_millisecond)
        .map_err(|e| format!("expected epoch milliseconds, RFC 3339 or `now`: {e}"))
}

/// A UTC day as `[start, end)` in epoch milliseconds.
/// The time zone dates are read in unless a command is told otherwise: the demo team's, and the
/// default of the planning commands too, so that `visits` and `day` mean the same day.
const TEAM_TIMEZONE: &str = "Europe/Paris";

/// A local day as [start, end) epoch ms (23 or 25 hours on the days clocks change).
fn local_day(date: jiff::civil::Date, tz: &TimeZone) -> Result<(i64, i64), jiff::Error> {
    let start = date.to_zoned_datetime(tz.clone())?.timestamp().as_millisecond();
    let end = date.tomorrow()?.to_zoned_datetime(tz.clone())?.timestamp().as_millisecond();
    Ok((start, end))
}

fn invalid(field: &str, reason: impl Into<String>) -> FieldsyncError {
    FieldsyncError::InvalidInput { field: field.into(), reason: reason.into() }
}

fn internal(e: impl std::fmt::Display) -> FieldsyncError {
    FieldsyncError::Internal { message: e.to_string() }
}

/// The exit code and JSON kind of each error.
fn exit_code(e: &FieldsyncError) -> (u8, &'static str) {
    match e {
        FieldsyncError::Internal { .. } => (1, "internal"),
        FieldsyncError::InvalidInput { .. } => (2, "invalid_input"),
        FieldsyncError::Offline { .. } => (3, "offline"),
        FieldsyncError::Unauthorized { .. } => (4, "unauthorized"),
        FieldsyncError::Rejected { .. } => (5, "rejected"),
        FieldsyncError::Storage { .. } => (6, "storage"),
        FieldsyncError::Cancelled => (7, "cancelled"),
        FieldsyncError::NotFound { .. } => (8, "not_found"),
    }
}

fn error_json(e: &FieldsyncError) -> Value {
    let (_, kind) = exit_code(e);
    let mut out = json!({ "error": kind, "message": e.to_string() });
    match e {
        FieldsyncError::InvalidInput { field, reason } => {
            out["field"] = json!(field);
            out["reason"] = json!(reason);
        }
        FieldsyncError::Rejected { doc, reason } => {
            out["doc"] = json!(doc);
            out["reason"] = json!(reason);
        }
        FieldsyncError::NotFound { id } => out["doc"] = json!(id),
        _ => {}
    }
    out
}

// JSON views of the FFI records (they do not implement serde; the core documents do).

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, FieldsyncError> {
    serde_json::to_value(v).map_err(internal)
}

fn check_in_json(r: &CheckInResult) -> Result<Value, FieldsyncError> {
    Ok(json!({ "visit": to_json(&r.visit)?, "verification": to_json(&r.verification)? }))
}

fn customer_near_json(c: &CustomerNear) -> Result<Value, FieldsyncError> {
    Ok(json!({ "distance_m": c.distance_m, "customer": to_json(&c.customer)? }))
}

fn rejected_json(r: &RejectedEditRecord) -> Value {
    let attempted = r
        .attempted_json
        .as_deref()
        .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())));
    json!({
        "doc_id": r.doc_id,
        "code": r.code,
        "reason": r.reason,
        "changes": r.changes,
        "attempted": attempted,
    })
}

fn summary_json(s: &SyncSummary) -> Value {
    json!({
        "rounds": s.rounds,
        "accepted_docs": s.accepted_docs,
        "rejected": s.rejected.iter().map(rejected_json).collect::<Vec<_>>(),
        "pulled_changes": s.pulled_changes,
        "pulled_docs": s.pulled_docs,
        "revoked": s.revoked,
        "more": s.more,
        "outbox_size": s.outbox_size,
    })
}

fn status_json(s: &SyncStatus) -> Value {
    json!({
        "device_id": s.device_id,
        "outbox_size": s.outbox_size,
        "last_sync_ms": s.last_sync_ms,
        "syncing": s.syncing,
        "documents": s.documents,
    })
}

/// Sync progress, one line per round trip on stderr.
#[derive(Debug)]
struct StderrProgress;

impl SyncProgress for StderrProgress {
    fn on_progress(&self, round: u32, docs_received: u32, changes_received: u32, more: bool) {
        eprintln!(
            "sync: round {round}: {docs_received} documents, {changes_received} changes received{}",
            if more { ", more to come" } else { "" }
        );
    }
}

fn run(cli: Cli) -> Result<Value, FieldsyncError> {
    let store = cli.store.ok_or_else(|| invalid("store", "pass --store DIR or set FIELDSYNC_STORE"))?;
    let client = FieldsyncClient::open(store.display().to_string(), cli.server)?;
    let has_token = cli.token.is_some();
    if let Some(token) = cli.token {
        client.set_token(token)?;
    }
    // The library speaks to apps ("call set_token"); say it the command line's way.
    execute(&client, cli.command, has_token).map_err(|e| match e {
        FieldsyncError::Unauthorized { message } => FieldsyncError::Unauthorized {
            message: message.replace("call set_token", "pass --token or set FIELDSYNC_TOKEN"),
        },
        other => other,
    })
}

fn execute(client: &FieldsyncClient, command: Command, has_token: bool) -> Result<Value, FieldsyncError> {
    match command {
        Command::Plan { customer, start, minutes } => {
            let end = start + i64::from(minutes) * 60_000;
            to_json(&client.plan_visit(customer, start, end)?)
        }
        Command::Visits { day, timezone, from, to } => {
            let (from, to) = match (from, to) {
                (Some(from), Some(to)) => (from, to),
                _ => {
                    let tz = TimeZone::get(&timezone).map_err(|e| invalid("timezone", e.to_string()))?;
                    let day = day.unwrap_or_else(|| Timestamp::now().to_zoned_datetime(tz.clone()).date());
                    local_day(day, &tz).map_err(|e| invalid("day", e.to_string()))?
                }
            };
            to_json(&client.visits_between(from, to)?)
        }
        Command::CheckIn { visit, lat, lon, accuracy, time, mock } => {
            let fix = GpsFix {
                lat,
                lon,
                accuracy_m: accuracy,
                device_time_ms: time.unwrap_or_else(now_ms),
                mock_location: mock,
            };
            check_in_json(&client.check_in(visit, fix)?)
        }
        Command::Note { visit, customer, text } => match (visit, customer) {
            (Some(visit), _) => to_json(&client.set_visit_notes(visit, text)?),
            (None, Some(customer)) => to_json(&client.set_customer_notes(customer, text)?),
            (None, None) => Err(invalid("visit", "pass --visit or --customer")),
        },
        Command::CheckOut { visit, outcome, next_step, time } => {
            to_json(&client.check_out(visit, outcome, next_step, time.unwrap_or_else(now_ms))?)
        }
        Command::CustomerStatus { customer, follow_up, stage } => {
            to_json(&client.update_customer_status(customer, follow_up, stage)?)
        }
        Command::CustomersNear { lat, lon, radius_m, tier, status } => {
            let tiers = tier.into_iter().map(Tier::from).collect();
            let near = client.customers_near(lat, lon, radius_m, tiers, status)?;
            Ok(Value::Array(near.iter().map(customer_near_json).collect::<Result<_, _>>()?))
        }
        Command::Sync => {
            if !has_token {
                return Err(FieldsyncError::Unauthorized {
                    message: "syncing needs a token: pass --token or set FIELDSYNC_TOKEN".into(),
                });
            }
            Ok(summary_json(&client.sync(Some(Arc::new(StderrProgress)))?))
        }
        Command::Pending => Ok(status_json(&client.status())),
        Command::Rejected => Ok(Value::Array(client.rejected_edits()?.iter().map(rejected_json).collect())),
        Command::Day { date, lat, lon, timezone, work_start_min, work_end_min } => {
            let d = client.plan_my_day(date, timezone, lat, lon, work_start_min, work_end_min)?;
            Ok(json!({
                "leave_ms": d.leave_ms,
                "end_ms": d.end_ms,
                "total_travel_m": d.total_travel_m,
                "total_travel_s": d.total_travel_s,
                "stops": d.stops.iter().map(|s| json!({
                    "id": s.id, "customer_id": s.customer_id, "customer_name": s.customer_name, "source": s.source,
                    "arrival_ms": s.arrival_ms, "start_ms": s.start_ms, "depart_ms": s.depart_ms,
                    "travel_m_from_prev": s.travel_m_from_prev,
                })).collect::<Vec<_>>(),
                // The same shape as the server's day plan: a reason is an object with its code.
                "done": d.done.iter().map(|v| json!({
                    "visit_id": v.visit_id, "customer_id": v.customer_id, "customer_name": v.customer_name,
                    "state": to_json(&v.state).unwrap_or_default(), "at_ms": v.at_ms,
                })).collect::<Vec<_>>(),
                "dropped": d.dropped.iter().map(|x| json!({ "id": x.id, "reason": { "code": x.reason } })).collect::<Vec<_>>(),
            }))
        }
        Command::Overdue => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            Ok(Value::Array(
                client
                    .overdue_customers(now)?
                    .iter()
                    .map(|o| json!({
                        "customer_id": o.customer_id, "customer_name": o.customer_name, "days_overdue": o.days_overdue,
                        "urgency": o.urgency, "remote": o.remote, "never_visited": o.never_visited,
                    }))
                    .collect(),
            ))
        }
        Command::Show { id } => serde_json::from_str(&client.document_json(id)?).map_err(internal),
        Command::Reassign { customer, to, territory } => {
            to_json(&client.reassign_customer(customer, to, territory)?)
        }
        Command::Prospect { name, lat, lon, address } => {
            to_json(&client.create_prospect(name, lat, lon, address)?)
        }
    }
}

fn fail(e: &FieldsyncError) -> ExitCode {
    eprintln!("{}", error_json(e));
    ExitCode::from(exit_code(e).0)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let message = match e.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    "a command is required: see fieldsync-device --help".to_string()
                }
                // The first paragraph: what is wrong (the rest is usage and a pointer to --help).
                _ => {
                    let text = e.to_string();
                    let first = text.split("\n\n").next().unwrap_or_default();
                    first.trim().trim_start_matches("error: ").to_string()
                }
            };
            return fail(&invalid("arguments", message));
        }
    };
    let compact = cli.compact;
    match run(cli) {
        Ok(mut value) => {
            // Figures as every surface prints them (no floating-point noise).
            fieldsync_mobile::fieldsync_core::figures::round(&mut value);
            let text =
                if compact { serde_json::to_string(&value) } else { serde_json::to_string_pretty(&value) };
            match text {
                Ok(text) => {
                    let mut stdout = std::io::stdout().lock();
                    // A closed pipe (`| head`) is not an error worth reporting.
                    let _ = writeln!(stdout, "{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&internal(e)),
            }
        }
        Err(e) => fail(&e),
    }
}
