//! Opening hours in a customer's local time → absolute windows (epoch milliseconds).
//!
//! Time zones come from `jiff` with the IANA database compiled in (`tzdb-bundle-always`, no system
//! time zone files read): the conversion is a pure function, gives the same answer on every phone and
//! server whatever their own database version, and stays pure Rust. `chrono-tz` would do the same at
//! several times the compile cost; passing UTC offsets in would get daylight-saving days wrong.
//! Local times that do not exist (the spring-forward gap) or happen twice (the autumn fold) are
//! resolved the "compatible" way (RFC 5545, Temporal): a gap moves forward, a fold takes the earlier.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::RouteError;
use fieldsync_core::docs::Customer;

/// A calendar date in the customer's (or rep's) local calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalDate {
    pub year: i16,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
}

impl LocalDate {
    pub fn new(year: i16, month: u8, day: u8) -> LocalDate {
        LocalDate { year, month, day }
    }

    fn civil(self) -> Result<Date, RouteError> {
        let bad = || RouteError::InvalidDate(format!("{:04}-{:02}-{:02}", self.year, self.month, self.day));
        let month = i8::try_from(self.month).map_err(|_| bad())?;
        let day = i8::try_from(self.day).map_err(|_| bad())?;
        Date::new(self.year, month, day).map_err(|_| bad())
    }

    /// The next calendar day.
    pub fn next(self) -> Result<LocalDate, RouteError> {
        let d = self.civil()?.tomorrow().map_err(|e| RouteError::InvalidDate(e.to_string()))?;
        Ok(LocalDate { year: d.year(), month: d.month() as u8, day: d.day() as u8 })
    }

    /// The local date at the instant `ms` (epoch milliseconds) in the IANA zone `tz`.
    ///
    /// ```
    /// use fieldsync_planning::route::{LocalDate, local_time_ms};
    /// // 00:30 in Paris on 29 March is still the 28th in UTC.
    /// let early = local_time_ms("Europe/Paris", LocalDate::new(2026, 3, 29), 30).unwrap();
    /// assert_eq!(LocalDate::of_ms("Europe/Paris", early).unwrap(), LocalDate::new(2026, 3, 29));
    /// assert_eq!(LocalDate::of_ms("UTC", early).unwrap(), LocalDate::new(2026, 3, 28));
    /// ```
    pub fn of_ms(tz: &str, ms: i64) -> Result<LocalDate, RouteError> {
        let ts = jiff::Timestamp::from_millisecond(ms).map_err(|e| RouteError::InvalidDate(e.to_string()))?;
        let d = zone(tz)?.to_datetime(ts).date();
        Ok(LocalDate { year: d.year(), month: d.month() as u8, day: d.day() as u8 })
    }

    /// ISO weekday, 1 = Monday … 7 = Sunday.
    pub fn weekday(self) -> Result<u8, RouteError> {
        Ok(self.civil()?.weekday().to_monday_one_offset() as u8)
    }
}

fn zone(name: &str) -> Result<TimeZone, RouteError> {
    TimeZone::get(name).map_err(|_| RouteError::UnknownTimeZone(name.to_owned()))
}

fn at_minute(tz: &TimeZone, date: Date, minute: u32) -> Result<i64, RouteError> {
    let (day, minute) = if minute >= 24 * 60 {
        (date.tomorrow().map_err(|e| RouteError::InvalidDate(e.to_string()))?, minute - 24 * 60)
    } else {
        (date, minute)
    };
    if minute >= 24 * 60 {
        return Err(RouteError::InvalidRequest {
            field: "minute".into(),
            reason: "must be at most 1440 (the next midnight)".into(),
        });
    }
    let dt = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    let ts = tz.to_timestamp(dt).map_err(|e| RouteError::InvalidDate(e.to_string()))?;
    Ok(ts.as_millisecond())
}

/// The instant of `minute` minutes after local midnight (0..=1440) on `date` in the IANA zone `tz`,
/// e.g. a rep's day start and end.
pub fn local_time_ms(tz: &str, date: LocalDate, minute: u32) -> Result<i64, RouteError> {
    at_minute(&zone(tz)?, date.civil()?, minute)
}

/// A customer's opening windows on one local date, as absolute epoch-millisecond windows, sorted and
/// with overlaps merged. Entries with open >= close or close > 1440 are ignored (the document
/// validator rejects them). An unknown time zone is [`RouteError::UnknownTimeZone`].
pub fn opening_windows(c: &Customer, date: LocalDate) -> Result<Vec<(i64, i64)>, RouteError> {
    let tz = zone(&c.timezone)?;
    let day = date.civil()?;
    let weekday = day.weekday().to_monday_one_offset() as u8;
    let mut windows = Vec::new();
    for h in &c.opening_hours {
        if h.weekday != weekday || h.open_min >= h.close_min || h.close_min > 24 * 60 {
            continue;
        }
        let open = at_minute(&tz, day, u32::from(h.open_min))?;
        let close = at_minute(&tz, day, u32::from(h.close_min))?;
        if open < close {
            windows.push((open, close));
        }
    }
    windows.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(windows.len());
    for (a, b) in windows {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged)
}

/// Opening windows over `days` consecutive local dates from `first` (for week plans).
pub fn opening_windows_for_days(
    c: &Customer,
    first: LocalDate,
    days: u32,
) -> Result<Vec<(i64, i64)>, RouteError> {
    let mut out = Vec::new();
    let mut date = first;
    for i in 0..days {
        out.extend(opening_windows(c, date)?);
        if i + 1 < days {
            date = date.next()?;
        }
    }
    Ok(out)
}
