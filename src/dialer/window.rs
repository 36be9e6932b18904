//! Calling windows in a contact's own time zone (pure).
//!
//! A [`CallingWindow`] is a local time-of-day range, e.g. 08:00–21:00, applied in the contact's
//! IANA zone (`chrono_tz::Tz`). It is open at `t` when the contact's wall clock at `t` reads a
//! time in `[start, end)`. A window whose end is before its start spans midnight (21:00–02:00 is
//! open late in the evening and early in the morning); `start == end` means always open.
//!
//! Daylight-saving changes are handled on the contact's local clock, the way the law reads it:
//! - on a spring-forward day, a start that falls in the skipped hour (a 02:30 start in
//!   America/New_York) opens at the first instant after the gap (03:00 local), and a window
//!   that lies wholly inside the gap does not open that day;
//! - on a fall-back day a local time that happens twice (01:30) opens at its first occurrence;
//!   during the repeated hour open or closed is read from the wall clock alone, so a contact is
//!   never called at a local time outside the window.

use chrono::{DateTime, Duration as TimeDelta, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A local time-of-day range during which a contact may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallingWindow {
    /// First local time at which calls are allowed (inclusive).
    pub start: NaiveTime,
    /// Local time from which calls are no longer allowed (exclusive). Before `start`: the
    /// window spans midnight. Equal to `start`: always open.
    pub end: NaiveTime,
}

impl CallingWindow {
    /// A window from `start` (inclusive) to `end` (exclusive), local time.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        Self { start, end }
    }

    /// A window given in whole hours and minutes, e.g. `hm(8, 0, 21, 0)`; `None` if a time is
    /// not a valid time of day.
    pub fn hm(start_h: u32, start_m: u32, end_h: u32, end_m: u32) -> Option<Self> {
        Some(Self {
            start: NaiveTime::from_hms_opt(start_h, start_m, 0)?,
            end: NaiveTime::from_hms_opt(end_h, end_m, 0)?,
        })
    }

    /// A window that is always open.
    pub fn always() -> Self {
        Self {
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
        }
    }

    /// Whether the local time of day `t` is inside the window.
    pub fn contains_local(&self, t: NaiveTime) -> bool {
        use std::cmp::Ordering::*;
        match self.start.cmp(&self.end) {
            Equal => true,
            Less => self.start <= t && t < self.end,
            // Spans midnight: the evening part or the morning part.
            Greater => t >= self.start || t < self.end,
        }
    }

    /// Whether a contact in `tz` may be called at `now`.
    pub fn is_open(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        self.contains_local(now.with_timezone(&tz).time())
    }

    /// The earliest instant at or after `now` at which the window is open for a contact in
    /// `tz` (`now` itself when it is open).
    pub fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.is_open(now, tz) {
            return now;
        }
        let today = now.with_timezone(&tz).date_naive();
        // The window opens at `start` on some local day: today's start may still be ahead, else
        // tomorrow's. A start swallowed by a DST gap moves to the end of the gap, which may be
        // past `end`; then the next day opens. Two transitions never fall on consecutive days in
        // the tz database, so a handful of days always finds one.
        let mut first_candidate = None;
        for day in 0..8 {
            let Some(date) = today.checked_add_signed(TimeDelta::days(day)) else {
                break;
            };
            let Some(at) = first_instant_at_or_after(tz, date, self.start) else {
                continue;
            };
            if at < now {
                continue;
            }
            first_candidate.get_or_insert(at);
            if self.is_open(at, tz) {
                return at;
            }
        }
        // Unreachable for real zones (see above); the earliest local start is the best answer.
        first_candidate.unwrap_or(now)
    }
}

impl Default for CallingWindow {
    /// 08:00–21:00, the most common legal calling hours (e.g. the US TCPA).
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(21, 0, 0).expect("valid time"),
        }
    }
}

/// The first instant whose local date is `date` and local time is at least `time`: the instant
/// `date time` maps to, its first occurrence if it happens twice, or the end of the gap if the
/// clocks skip it. `None` if no instant of that local day reads `time` or later.
fn first_instant_at_or_after(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: the first local time after it is its end. Gaps in the tz database begin
            // and end on whole minutes and last at most a few hours (a day for a zone that
            // skipped a date, e.g. Pacific/Apia in 2011), so step by minutes.
            let mut probe = local;
            for _ in 0..(26 * 60) {
                probe += TimeDelta::minutes(1);
                if probe.date() != date {
                    return None;
                }
                match tz.from_local_datetime(&probe) {
                    LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                    LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn w(a: u32, b: u32, c: u32, d: u32) -> CallingWindow {
        CallingWindow::hm(a, b, c, d).unwrap()
    }

    #[test]
    fn ordinary_day_open_close_and_next_open() {
        let win = w(8, 0, 21, 0);
        // 2026-06-10 in New York is EDT (UTC-4).
        assert!(!win.is_open(utc("2026-06-10T11:59:59Z"), New_York)); // 07:59:59 local
        assert!(win.is_open(utc("2026-06-10T12:00:00Z"), New_York)); // 08:00 local
        assert!(win.is_open(utc("2026-06-11T00:59:59Z"), New_York)); // 20:59:59 local
        assert!(!win.is_open(utc("2026-06-11T01:00:00Z"), New_York)); // 21:00 local
        assert_eq!(
            win.next_open(utc("2026-06-10T05:00:00Z"), New_York),
            utc("2026-06-10T12:00:00Z")
        );
        // After the end: tomorrow's 08:00.
        assert_eq!(
            win.next_open(utc("2026-06-11T02:00:00Z"), New_York),
            utc("2026-06-11T12:00:00Z")
        );
        // Open now: now.
        let now = utc("2026-06-10T15:00:00Z");
        assert_eq!(win.next_open(now, New_York), now);
    }

    #[test]
    fn new_york_spring_forward_day() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let win = w(8, 0, 21, 0);
        // Friday evening 22:00 EST -> Sunday 08:00 EDT is 12:00 UTC (not 13:00).
        assert_eq!(
            win.next_open(utc("2026-03-08T03:00:00Z"), New_York),
            utc("2026-03-08T12:00:00Z")
        );
        assert!(!win.is_open(utc("2026-03-08T11:59:00Z"), New_York));
        assert!(win.is_open(utc("2026-03-08T12:00:00Z"), New_York));
        // A window starting inside the skipped hour opens when the gap ends (03:00 EDT).
        let early = w(2, 30, 6, 0);
        assert_eq!(
            early.next_open(utc("2026-03-08T05:00:00Z"), New_York), // 00:00 EST
            utc("2026-03-08T07:00:00Z")
        );
        // A window wholly inside the gap does not open that day: next day 02:00 EDT.
        let gap_only = w(2, 0, 2, 45);
        assert_eq!(
            gap_only.next_open(utc("2026-03-08T05:00:00Z"), New_York),
            utc("2026-03-09T06:00:00Z")
        );
    }

    #[test]
    fn new_york_fall_back_day() {
        // 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00 UTC); 01:xx happens twice.
        let win = w(8, 0, 21, 0);
        // Saturday 21:30 EDT -> Sunday 08:00 EST = 13:00 UTC.
        assert_eq!(
            win.next_open(utc("2026-11-01T01:30:00Z"), New_York),
            utc("2026-11-01T13:00:00Z")
        );
        assert!(!win.is_open(utc("2026-11-01T12:59:00Z"), New_York));
        assert!(win.is_open(utc("2026-11-01T13:00:00Z"), New_York));
        // Closes at 21:00 EST = 02:00 UTC next day.
        assert!(win.is_open(utc("2026-11-02T01:59:00Z"), New_York));
        assert!(!win.is_open(utc("2026-11-02T02:00:00Z"), New_York));
        // A start in the repeated hour opens at its first occurrence (01:30 EDT = 05:30 UTC).
        let night = w(1, 30, 3, 0);
        assert_eq!(
            night.next_open(utc("2026-11-01T03:00:00Z"), New_York),
            utc("2026-11-01T05:30:00Z")
        );
        // Both 01:45 EDT and 01:45 EST read 01:45 on the wall: open in both.
        assert!(night.is_open(utc("2026-11-01T05:45:00Z"), New_York));
        assert!(night.is_open(utc("2026-11-01T06:45:00Z"), New_York));
    }

    #[test]
    fn berlin_dst_days() {
        let win = w(8, 0, 21, 0);
        // 2026-03-29: 02:00 CET -> 03:00 CEST. 08:00 CEST = 06:00 UTC.
        assert_eq!(
            win.next_open(utc("2026-03-28T21:00:00Z"), Berlin),
            utc("2026-03-29T06:00:00Z")
        );
        // The day before, 08:00 CET = 07:00 UTC.
        assert_eq!(
            win.next_open(utc("2026-03-27T22:00:00Z"), Berlin),
            utc("2026-03-28T07:00:00Z")
        );
        // 2026-10-25: 03:00 CEST -> 02:00 CET. 08:00 CET = 07:00 UTC.
        assert_eq!(
            win.next_open(utc("2026-10-24T20:00:00Z"), Berlin),
            utc("2026-10-25T07:00:00Z")
        );
        assert!(!win.is_open(utc("2026-10-25T06:30:00Z"), Berlin)); // 07:30 CET
        // Start at 02:30, in the gap on the spring day: opens at 03:00 CEST = 01:00 UTC.
        let early = w(2, 30, 5, 0);
        assert_eq!(
            early.next_open(utc("2026-03-28T23:30:00Z"), Berlin),
            utc("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn window_spanning_midnight() {
        let win = w(22, 0, 2, 0);
        // Berlin in June is UTC+2.
        assert!(win.is_open(utc("2026-06-10T20:00:00Z"), Berlin)); // 22:00
        assert!(win.is_open(utc("2026-06-10T23:59:00Z"), Berlin)); // 01:59 next day
        assert!(!win.is_open(utc("2026-06-11T00:00:00Z"), Berlin)); // 02:00
        assert!(!win.is_open(utc("2026-06-10T12:00:00Z"), Berlin)); // 14:00
        assert_eq!(
            win.next_open(utc("2026-06-10T12:00:00Z"), Berlin),
            utc("2026-06-10T20:00:00Z")
        );
        // From 02:00 local: the same evening.
        assert_eq!(
            win.next_open(utc("2026-06-11T00:00:00Z"), Berlin),
            utc("2026-06-11T20:00:00Z")
        );
        // Spanning midnight across the Berlin fall-back night: a 23:00-04:00 window with the
        // repeated 02:xx hour; open throughout the local night.
        let night = w(23, 0, 4, 0);
        assert!(night.is_open(utc("2026-10-25T00:30:00Z"), Berlin)); // 02:30 CEST
        assert!(night.is_open(utc("2026-10-25T01:30:00Z"), Berlin)); // 02:30 CET
        assert!(!night.is_open(utc("2026-10-25T03:00:00Z"), Berlin)); // 04:00 CET
    }

    #[test]
    fn contact_where_it_is_already_tomorrow() {
        let kiritimati: Tz = "Pacific/Kiritimati".parse().unwrap(); // UTC+14
        let win = w(8, 0, 21, 0);
        // 2026-06-10 20:00 UTC is 2026-06-11 10:00 there: open.
        assert!(win.is_open(utc("2026-06-10T20:00:00Z"), kiritimati));
        // 2026-06-10 08:00 UTC is 22:00 on the 10th there; opens 08:00 on the 11th = 18:00
        // UTC on the 10th, still "today" in UTC.
        assert_eq!(
            win.next_open(utc("2026-06-10T08:00:00Z"), kiritimati),
            utc("2026-06-10T18:00:00Z")
        );
        // Auckland in its summer (NZDT, UTC+13): 2026-01-15 20:00 UTC is 09:00 on the 16th.
        let auckland: Tz = "Pacific/Auckland".parse().unwrap();
        assert!(win.is_open(utc("2026-01-15T20:00:00Z"), auckland));
        assert_eq!(
            win.next_open(utc("2026-01-15T10:00:00Z"), auckland), // 23:00 on the 15th
            utc("2026-01-15T19:00:00Z")
        );
    }

    #[test]
    fn always_open_window() {
        let win = CallingWindow::always();
        let now = utc("2026-03-08T07:30:00Z");
        assert!(win.is_open(now, New_York));
        assert_eq!(win.next_open(now, New_York), now);
    }
}
