//! duplicity's time strings: `YYYYMMDDTHHMMSSZ` in file names and the time syntax users
//! type after `--time`, `remove-older-than` and `--full-if-older-than`.

use std::sync::atomic::{AtomicU32, Ordering};

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Calendar date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn timegm(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
}

/// `20240101T120000Z` for an epoch time.
pub fn to_string(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86400));
    let secs = t.rem_euclid(86400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_ranges(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<()> {
    (1900 < y
        && y < 2100
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=61).contains(&s))
    .then_some(())
}

/// Seconds east of UTC of the local time zone (standard offset at `t`).
pub fn local_offset(t: i64) -> i64 {
    // SAFETY: localtime_r only writes into the tm we pass.
    unsafe {
        let tt = t as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&tt, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff - if tm.tm_isdst > 0 { 3600 } else { 0 }
    }
}

/// The character between hours, minutes and seconds in old-style file names
/// (`--time-separator`; `:` by default).
static FILENAME_SEPARATOR: AtomicU32 = AtomicU32::new(':' as u32);

/// Sets `--time-separator` for the file names read from now on.
pub fn set_filename_separator(c: char) {
    FILENAME_SEPARATOR.store(c as u32, Ordering::Relaxed);
}

/// Parses duplicity's "W3C or duplicity" datetime (`stringtotime`): the 16-character UTC
/// form, or `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`.
pub fn from_string(s: &str) -> Option<i64> {
    from_string_sep(s, ':')
}

/// [`from_string`] with `sep` between hours, minutes and seconds (and in the zone).
fn from_string_sep(s: &str, sep: char) -> Option<i64> {
    let head = s.get(..s.len().min(19))?;
    let (date, daytime) = head.split_once('T')?;
    if s.len() == 16 {
        if !s.ends_with('Z') || date.len() != 8 || daytime.len() < 6 {
            return None;
        }
        // `get` so that a multi-byte character is a mismatch, not a panic.
        let n = |a: &str, r: std::ops::Range<usize>| -> Option<i64> {
            a.get(r).filter(|a| all_digits(a))?.parse().ok()
        };
        let (y, mo, d) = (n(date, 0..4)?, n(date, 4..6)?, n(date, 6..8)?);
        let (h, mi, sec) = (n(daytime, 0..2)?, n(daytime, 2..4)?, n(daytime, 4..6)?);
        check_ranges(y, mo, d, h, mi, sec)?;
        return Some(timegm(y, mo, d, h, mi, sec));
    }
    let dparts: Vec<&str> = date.split('-').collect();
    let tparts: Vec<&str> = daytime.split(sep).collect();
    if dparts.len() != 3 || tparts.len() != 3 {
        return None;
    }
    let n = |a: &str| -> Option<i64> { a.trim().parse().ok() };
    let (y, mo, d) = (n(dparts[0])?, n(dparts[1])?, n(dparts[2])?);
    let (h, mi, sec) = (n(tparts[0])?, n(tparts[1])?, n(tparts[2])?);
    check_ranges(y, mo, d, h, mi, sec)?;
    let utc = timegm(y, mo, d, h, mi, sec);
    // Shorter strings have no zone, which duplicity's `tzdtoseconds` refuses.
    let tzd = s.get(19..).unwrap_or("");
    let offset = if tzd == "Z" {
        0
    } else {
        let sign = match tzd.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        if tzd.len() != 6 {
            return None;
        }
        sign * (n(tzd.get(1..3)?)? * 3600 + n(tzd.get(4..6)?)? * 60)
    };
    Some(utc - offset)
}

/// Parses a time in a file name: the 16-character form, or digits as raw epoch seconds.
pub fn from_filename(s: &str) -> Option<i64> {
    let s = s.to_ascii_uppercase();
    if all_digits(&s) {
        return s.parse().ok();
    }
    let sep = char::from_u32(FILENAME_SEPARATOR.load(Ordering::Relaxed)).unwrap_or(':');
    from_string_sep(&s, sep)
}

/// Seconds in an interval string such as `3D2h` (s, m, h, D, W, M, Y).
pub fn interval_seconds(s: &str) -> Option<i64> {
    if all_digits(s) {
        return s.parse().ok();
    }
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits == rest.len() {
            return None;
        }
        let num: i64 = rest[..digits].parse().ok()?;
        let unit = match rest.as_bytes()[digits] {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'D' => 86400,
            b'W' => 7 * 86400,
            b'M' => 30 * 86400,
            b'Y' => 365 * 86400,
            _ => return None,
        };
        total = total.checked_add(num.checked_mul(unit)?)?;
        rest = &rest[digits + 1..];
    }
    Some(total)
}

/// A time as users type it (duplicity's `genstrtotime`): `now`, epoch seconds, W3C or
/// file-name datetimes, an interval before `now`, or a date such as `2024-01-31`,
/// `2024/1/31`, `1/31/2024` or `20240131Z` (midnight, local time).
pub fn parse_user_time(s: &str, now: i64) -> Result<i64, String> {
    if s == "now" {
        return Ok(now);
    }
    if all_digits(s) {
        return s.parse().map_err(|_| bad_time(s));
    }
    if let Some(t) = from_string(s) {
        return Ok(t);
    }
    if s.len() == 19 {
        if let Some(t) = from_string(&format!("{s}Z")) {
            return Ok(t - local_offset(t));
        }
    }
    if let Some(secs) = interval_seconds(s) {
        return now.checked_sub(secs).ok_or_else(|| bad_time(s));
    }
    let parse_date = |s: &str| -> Option<(i64, i64, i64)> {
        if let Some(d) = s.strip_suffix('Z') {
            if d.len() == 8 && all_digits(d) {
                return Some((
                    d[0..4].parse().ok()?,
                    d[4..6].parse().ok()?,
                    d[6..8].parse().ok()?,
                ));
            }
            return None;
        }
        let parts: Vec<&str> = s.split(['-', '/']).collect();
        if parts.len() != 3 || !parts.iter().all(|p| all_digits(p)) {
            return None;
        }
        if parts[0].len() == 4 && parts[1].len() <= 2 && parts[2].len() <= 2 {
            Some((
                parts[0].parse().ok()?,
                parts[1].parse().ok()?,
                parts[2].parse().ok()?,
            ))
        } else if parts[2].len() == 4 && parts[0].len() <= 2 && parts[1].len() <= 2 {
            Some((
                parts[2].parse().ok()?,
                parts[0].parse().ok()?,
                parts[1].parse().ok()?,
            ))
        } else {
            None
        }
    };
    let (y, m, d) = parse_date(s).ok_or_else(|| bad_time(s))?;
    check_ranges(y, m, d, 0, 0, 0).ok_or_else(|| bad_time(s))?;
    let t = timegm(y, m, d, 0, 0, 0);
    Ok(t - local_offset(t))
}

fn bad_time(s: &str) -> String {
    format!(
        "bad time string {s:?}: use an interval (3D64s), a W3C datetime \
         (2002-04-26T04:22:01-07:00), a date (2001-04-23 or 4/23/2001) or epoch seconds"
    )
}

/// `Mon Jan  1 12:00:00 2024` in local time, as Python's `time.asctime(time.localtime(t))`.
pub fn pretty(t: i64) -> String {
    // SAFETY: localtime_r only writes into the tm we pass.
    let tm = unsafe {
        let tt = t as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&tt, &mut tm);
        tm
    };
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// `2024-01-31 12:00:00,123` in local time, as Python's logging writes `asctime`
/// (duplicity's `--log-timestamp`).
pub fn local_log_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // SAFETY: localtime_r only writes into the tm we pass.
    let tm = unsafe {
        let tt = d.as_secs() as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&tt, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filename_times() {
        assert_eq!(to_string(1704110400), "20240101T120000Z");
        assert_eq!(from_filename("20240101T120000Z"), Some(1704110400));
        assert_eq!(from_filename("20240101t120000z"), Some(1704110400));
        assert_eq!(from_filename("1704110400"), Some(1704110400));
        assert_eq!(from_filename("20241301T120000Z"), None);
        assert_eq!(from_filename("garbage"), None);
    }

    #[test]
    fn user_times() {
        let now = 1704196800;
        assert_eq!(parse_user_time("now", now), Ok(now));
        assert_eq!(parse_user_time("1704110400", now), Ok(1704110400));
        assert_eq!(parse_user_time("3D2h", now), Ok(now - 3 * 86400 - 7200));
        assert_eq!(parse_user_time("1h30m", now), Ok(now - 5400));
        assert_eq!(parse_user_time("2024-01-01T12:00:00Z", now), Ok(1704110400));
        assert_eq!(
            parse_user_time("2024-01-01T13:00:00+01:00", now),
            Ok(1704110400)
        );
        assert_eq!(parse_user_time("20240101T120000Z", now), Ok(1704110400));
        assert!(parse_user_time("yesterday", now).is_err());
        assert!(parse_user_time("3X", now).is_err());
    }

    #[test]
    fn malformed_times_are_refused_not_panics() {
        for s in [
            "2024-1-1T1:2:3",
            "2024-01-01T12:00:00+0\u{e9}00",
            "20\u{e9}0101T120000Z",
            "2024010\u{e9}T12000Z",
            "T",
            ":",
        ] {
            assert_eq!(from_string(s), None, "{s:?}");
            assert_eq!(from_filename(s), None, "{s:?}");
            assert!(parse_user_time(s, 0).is_err(), "{s:?}");
        }
        assert!(parse_user_time("9223372036854775807s", -2).is_err());
    }

    #[test]
    fn civil_round_trip() {
        for t in [0i64, 951782400, 1704110400, 4102444799] {
            let s = to_string(t);
            assert_eq!(from_string(&s), Some(t));
        }
    }
}
