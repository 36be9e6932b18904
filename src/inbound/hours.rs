//! Business hours (pure): a weekly schedule and holidays in a time zone, asked "open at this
//! UTC instant?". Parsed once from [`HoursConfig`]; the engine asks with the wall clock its
//! driver tells it, so tests choose the time.
//!
//! Periods are `"<days> HH:MM-HH:MM"` with days `mon`..`sun`, a range (`mon-fri`) or a list
//! (`mon,wed,fri`); `24:00` ends a period at midnight. A period whose end is before its start
//! runs over midnight (`fri 22:00-02:00` is open Friday night until 2 am Saturday). Holidays
//! (`YYYY-MM-DD`, local dates) close the whole local day, also to a period begun the day before.

use crate::config::HoursConfig;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// A malformed schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Unknown time zone name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// A period that is not `<days> HH:MM-HH:MM`.
    #[error("invalid opening period {0:?} (expected e.g. \"mon-fri 09:00-17:30\")")]
    Period(String),
    /// A holiday that is not `YYYY-MM-DD`.
    #[error("invalid holiday {0:?} (expected YYYY-MM-DD)")]
    Holiday(String),
}

/// One open period: a set of days (bit 0 = Monday) and minutes from local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    days: u8,
    start_min: u16,
    end_min: u16,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    tz: Tz,
    periods: Vec<Period>,
    holidays: Vec<NaiveDate>,
}

fn day(s: &str) -> Option<u8> {
    Some(match s {
        "mon" => 0,
        "tue" => 1,
        "wed" => 2,
        "thu" => 3,
        "fri" => 4,
        "sat" => 5,
        "sun" => 6,
        _ => return None,
    })
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) || h.to_string().len() > 2 {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_period(text: &str) -> Option<Period> {
    let (days_s, times) = text.trim().split_once(' ')?;
    let mut days = 0u8;
    for part in days_s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << day(part)?,
        }
    }
    let (a, b) = times.trim().split_once('-')?;
    let (start_min, end_min) = (minutes(a)?, minutes(b)?);
    if start_min == end_min || start_min >= 24 * 60 {
        return None;
    }
    Some(Period {
        days,
        start_min,
        end_min,
    })
}

impl Schedule {
    /// Parses a number's `hours`.
    pub fn parse(cfg: &HoursConfig) -> Result<Self, HoursError> {
        let tz: Tz = cfg
            .timezone
            .parse()
            .map_err(|_| HoursError::TimeZone(cfg.timezone.clone()))?;
        let periods = cfg
            .open
            .iter()
            .map(|p| parse_period(p).ok_or_else(|| HoursError::Period(p.clone())))
            .collect::<Result<_, _>>()?;
        let holidays = cfg
            .holidays
            .iter()
            .map(|h| {
                NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|_| HoursError::Holiday(h.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tz,
            periods,
            holidays,
        })
    }

    /// Whether the number is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let date = local.date_naive();
        if self.holidays.contains(&date) {
            return false;
        }
        let t: NaiveTime = local.time();
        let min = (t.hour() * 60 + t.minute()) as u16;
        let today = local.weekday().num_days_from_monday() as u8;
        let yesterday = (today + 6) % 7;
        self.periods.iter().any(|p| {
            if p.start_min < p.end_min {
                p.days & (1 << today) != 0 && min >= p.start_min && min < p.end_min
            } else {
                // Over midnight: the evening part today, the morning part from yesterday's.
                (p.days & (1 << today) != 0 && min >= p.start_min)
                    || (p.days & (1 << yesterday) != 0 && min < p.end_min)
            }
        })
    }
}

/// The weekday of a date, for tests and docs.
pub fn weekday_of(d: NaiveDate) -> Weekday {
    d.weekday()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;

    fn sched(tz: &str, open: &[&str], holidays: &[&str]) -> Schedule {
        Schedule::parse(&HoursConfig {
            timezone: tz.into(),
            open: open.iter().map(|s| s.to_string()).collect(),
            holidays: holidays.iter().map(|s| s.to_string()).collect(),
            closed: Box::new(RouteConfig::Echo),
        })
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekdays_in_the_time_zone() {
        let s = sched("Europe/Paris", &["mon-fri 09:00-17:30"], &[]);
        // 2026-11-23 is a Monday; Paris is UTC+1 in November.
        assert_eq!(
            weekday_of(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()),
            Weekday::Mon
        );
        assert!(!s.is_open(utc("2026-11-23T07:59:00Z")));
        assert!(s.is_open(utc("2026-11-23T08:00:00Z")));
        assert!(s.is_open(utc("2026-11-23T16:29:00Z")));
        assert!(!s.is_open(utc("2026-11-23T16:30:00Z")));
        // Saturday.
        assert!(!s.is_open(utc("2026-11-21T10:00:00Z")));
    }

    #[test]
    fn daylight_saving_moves_the_utc_hours() {
        let s = sched("America/New_York", &["mon-fri 09:00-17:00"], &[]);
        // July: UTC-4; December: UTC-5.
        assert!(s.is_open(utc("2026-07-06T13:00:00Z")));
        assert!(!s.is_open(utc("2026-12-07T13:30:00Z")));
        assert!(s.is_open(utc("2026-12-07T14:00:00Z")));
    }

    #[test]
    fn holidays_close_the_local_day() {
        let s = sched("UTC", &["mon-sun 00:00-24:00"], &["2026-12-25"]);
        assert!(s.is_open(utc("2026-12-24T23:59:00Z")));
        assert!(!s.is_open(utc("2026-12-25T12:00:00Z")));
        assert!(s.is_open(utc("2026-12-26T00:00:00Z")));
    }

    #[test]
    fn periods_over_midnight_and_lists() {
        let s = sched("UTC", &["fri 22:00-02:00", "mon,wed 10:00-11:00"], &[]);
        // 2026-11-27 is a Friday.
        assert!(s.is_open(utc("2026-11-27T23:00:00Z")));
        assert!(s.is_open(utc("2026-11-28T01:59:00Z")));
        assert!(!s.is_open(utc("2026-11-28T02:00:00Z")));
        assert!(!s.is_open(utc("2026-11-27T01:00:00Z")));
        assert!(s.is_open(utc("2026-11-25T10:30:00Z")));
        assert!(!s.is_open(utc("2026-11-24T10:30:00Z")));
    }

    #[test]
    fn bad_input_is_named() {
        let cfg = |tz: &str, open: &str, hol: &str| HoursConfig {
            timezone: tz.into(),
            open: vec![open.into()],
            holidays: if hol.is_empty() {
                vec![]
            } else {
                vec![hol.into()]
            },
            closed: Box::new(RouteConfig::Echo),
        };
        assert_eq!(
            Schedule::parse(&cfg("Mars/Olympus", "mon 09:00-10:00", "")),
            Err(HoursError::TimeZone("Mars/Olympus".into()))
        );
        for bad in [
            "monday 09:00-10:00",
            "mon 9-10",
            "mon 25:00-26:00",
            "mon 09:00-09:00",
            "mon",
        ] {
            assert!(
                matches!(
                    Schedule::parse(&cfg("UTC", bad, "")),
                    Err(HoursError::Period(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Schedule::parse(&cfg("UTC", "mon 09:00-10:00", "25/12/2026")),
            Err(HoursError::Holiday(_))
        ));
    }
}
