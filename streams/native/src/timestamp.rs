//! `occurred_at` as `streams.events.strict_timestamp_ms` reads it, for the forms it is sure of.
//!
//! The Python rule is the RFC 3339 grammar (`YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1-9
//! digits, then `Z` or `±HH:MM`) followed by `datetime.fromisoformat`'s calendar and range
//! checks, with the fraction truncated to the millisecond. Every text accepted here is one
//! the rule accepts with the same milliseconds; anything else is left to the rule.

const MS_PER_DAY: i64 = 86_400_000;

/// UTC epoch milliseconds of `text`, or None where the Python rule must decide.
pub fn timestamp_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (hour, minute, second) = (number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?);
    let (fraction_ms, zone) = fraction(&b[19..])?;
    let offset_minutes = offset(zone)?;
    let valid_date = year >= 1 && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
    if !valid_date || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let clock_ms = ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + fraction_ms;
    Some(days_from_civil(year, month, day) * MS_PER_DAY + clock_ms)
}

/// The milliseconds of an optional `.digits` (1-9 of them, truncated) and what follows it.
fn fraction(rest: &[u8]) -> Option<(i64, &[u8])> {
    let Some(digits) = rest.strip_prefix(b".") else {
        return Some((0, rest));
    };
    let count = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=9).contains(&count) {
        return None;
    }
    let ms = (0..3).fold(0, |ms, i| ms * 10 + digits.get(i).filter(|_| i < count).map_or(0, |c| i64::from(c - b'0')));
    Some((ms, &digits[count..]))
}

/// The zone's offset east of UTC in minutes: `Z` or `±HH:MM` below 24 hours.
fn offset(zone: &[u8]) -> Option<i64> {
    match zone {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (number(&[*h1, *h2])?, number(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            Some(if *sign == b'-' { -(hours * 60 + minutes) } else { hours * 60 + minutes })
        }
        _ => None,
    }
}

/// ASCII digits as a number (Python's `\d` also takes other scripts' digits: left to it).
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::timestamp_ms;

    #[test]
    fn reads_the_forms_python_reads_with_the_same_milliseconds() {
        assert_eq!(timestamp_ms("2026-01-01T00:00:00.1234567Z"), Some(1_767_225_600_123));
        assert_eq!(timestamp_ms("0001-01-01T00:00:00+01:00"), Some(-62_135_600_400_000));
        assert_eq!(timestamp_ms("9999-12-31T23:59:59-01:00"), Some(253_402_304_399_000));
        assert_eq!(timestamp_ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(timestamp_ms("2024-02-29t00:00:00z"), Some(1_709_164_800_000));
    }

    #[test]
    fn leaves_what_python_refuses_to_python() {
        for text in ["2026-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z", "2026-01-01T00:00:00+24:00",
                     "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z", "0000-01-01T00:00:00Z", "2026-01-01T00:00:00"] {
            assert_eq!(timestamp_ms(text), None, "{text}");
        }
    }
}
