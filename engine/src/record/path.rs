//! Segment file names: MediaMTX's `recordPath` templates, encoded from a segment's start and
//! decoded back when listing, and the RFC 3339 times the API shows and takes.
//!
//! Times are UTC: `%Y %m %d %H %M %S` are UTC fields, `%z` is always `Z`, `%s` is Unix seconds
//! and `%f` the microseconds. No I/O.
#![forbid(unsafe_code)]

/// A `recordPath` template with its format's extension, e.g.
/// `./recordings/%path/%Y-%m-%d_%H-%M-%S-%f.mp4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template(pub String);

/// The placeholders, longest first where one is the prefix of another.
const PLACEHOLDERS: [&str; 10] = [
    "%path", "%Y", "%m", "%d", "%H", "%M", "%S", "%f", "%z", "%s",
];

impl Template {
    /// `record_path` + `extension` (`.mp4` / `.ts`).
    pub fn new(record_path: &str, extension: &str) -> Template {
        Template(format!("{record_path}{extension}"))
    }

    /// The template with `%path` replaced by a path's name.
    pub fn for_path(&self, path: &str) -> Template {
        Template(self.0.replace("%path", path))
    }

    /// The file name of a segment of `path` starting at `start_us` (Unix microseconds).
    pub fn encode(&self, path: &str, start_us: u64) -> String {
        let secs = start_us / 1_000_000;
        let civil = Civil::from_unix(secs);
        let mut out = String::with_capacity(self.0.len() + 32);
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let Some(p) = PLACEHOLDERS.iter().find(|p| rest.starts_with(**p)) else {
                out.push('%');
                rest = &rest[1..];
                continue;
            };
            match *p {
                "%path" => out.push_str(path),
                "%Y" => out.push_str(&civil.year.to_string()),
                "%m" => out.push_str(&format!("{:02}", civil.month)),
                "%d" => out.push_str(&format!("{:02}", civil.day)),
                "%H" => out.push_str(&format!("{:02}", civil.hour)),
                "%M" => out.push_str(&format!("{:02}", civil.minute)),
                "%S" => out.push_str(&format!("{:02}", civil.second)),
                "%f" => out.push_str(&format!("{:06}", start_us % 1_000_000)),
                "%z" => out.push('Z'),
                _ => out.push_str(&secs.to_string()),
            }
            rest = &rest[p.len()..];
        }
        out.push_str(rest);
        out
    }

    /// The directory every segment of the template lies under: the leading directories without
    /// a placeholder (MediaMTX's `CommonPath`).
    pub fn common_dir(&self) -> &str {
        let mut end = 0;
        for (i, c) in self.0.char_indices() {
            if c == '%' {
                break;
            }
            if c == '/' {
                end = i;
            }
        }
        &self.0[..end]
    }

    /// A file name's path (what `%path` matched, empty without `%path`) and start in Unix
    /// microseconds, or `None` if the name does not fit the template.
    pub fn decode(&self, name: &str) -> Option<(String, u64)> {
        let mut fields = Fields::default();
        if !matches(self.0.as_bytes(), name.as_bytes(), &mut fields) {
            return None;
        }
        let start = match fields.unix {
            Some(s) => s * 1_000_000 + fields.micros,
            None => {
                let c = Civil {
                    year: fields.year?,
                    month: fields.month.unwrap_or(1),
                    day: fields.day.unwrap_or(1),
                    hour: fields.hour.unwrap_or(0),
                    minute: fields.minute.unwrap_or(0),
                    second: fields.second.unwrap_or(0),
                };
                c.to_unix()? * 1_000_000 + fields.micros
            }
        };
        Some((fields.path, start))
    }
}

#[derive(Debug, Default, Clone)]
struct Fields {
    path: String,
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    micros: u64,
    unix: Option<u64>,
}

/// Matches `name` against the template; `%path` is lazy (the shortest name that lets the rest
/// match), as MediaMTX's `(.*?)`.
fn matches(t: &[u8], n: &[u8], f: &mut Fields) -> bool {
    if t.is_empty() {
        return n.is_empty();
    }
    if t[0] != b'%' {
        // A run of literal text at once.
        let run = t.iter().position(|&b| b == b'%').unwrap_or(t.len());
        return n.len() >= run && t[..run] == n[..run] && matches(&t[run..], &n[run..], f);
    }
    if t.starts_with(b"%path") {
        for cut in 0..=n.len() {
            let mut inner = f.clone();
            if matches(&t[5..], &n[cut..], &mut inner) {
                inner.path = String::from_utf8_lossy(&n[..cut]).into_owned();
                *f = inner;
                return true;
            }
        }
        return false;
    }
    let digits = |len: usize| -> Option<u64> {
        let d = n.get(..len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(d).ok()?.parse().ok())?
    };
    let Some(&code) = t.get(1) else {
        return n.first() == Some(&b'%') && n.len() == 1;
    };
    let (len, value) = match code {
        b'Y' => (4, digits(4)),
        b'm' | b'd' | b'H' | b'M' | b'S' => (2, digits(2)),
        b'f' => (6, digits(6)),
        b's' => (10, digits(10)),
        b'z' => {
            if n.first() == Some(&b'Z') {
                return matches(&t[2..], &n[1..], f);
            }
            return false;
        }
        _ => return n.first() == Some(&b'%') && matches(&t[1..], &n[1..], f),
    };
    let Some(v) = value else {
        return false;
    };
    match code {
        b'Y' => f.year = Some(v as i64),
        b'm' => f.month = Some(v as u32),
        b'd' => f.day = Some(v as u32),
        b'H' => f.hour = Some(v as u32),
        b'M' => f.minute = Some(v as u32),
        b'S' => f.second = Some(v as u32),
        b'f' => f.micros = v,
        _ => f.unix = Some(v),
    }
    matches(&t[2..], &n[len..], f)
}

/// A UTC calendar time to the second (also what the API's timestamps are written from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl Civil {
    pub(crate) fn from_unix(secs: u64) -> Civil {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    fn to_unix(self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || !(1..=31).contains(&self.day)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).ok()
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Its inverse: days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-05-01T12:34:56.789012Z`, trailing zeros of the fraction trimmed (Go's RFC3339Nano,
/// which MediaMTX's JSON carries).
pub fn rfc3339_us(unix_us: u64) -> String {
    let c = Civil::from_unix(unix_us / 1_000_000);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let micros = unix_us % 1_000_000;
    if micros != 0 {
        let fraction = format!(".{micros:06}");
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses RFC 3339 (`2024-05-01T12:34:56Z`, `…56.5+02:00`) into Unix microseconds; the
/// fraction is kept to the microsecond.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let civil = Civil {
        year: i64::from(num(0..4)?),
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
    };
    let mut at = 19;
    let mut micros: u64 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let digits = &s[start..at.min(start + 6)];
        micros = digits.parse::<u64>().ok()? * 10u64.pow(6 - digits.len() as u32);
    }
    let offset_s: i64 = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let h = i64::from(num(at + 1..at + 3)?);
            let m = i64::from(num(at + 4..at + 6)?);
            let o = h * 3600 + m * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = i64::try_from(civil.to_unix()?).ok()? - offset_s;
    Some(u64::try_from(secs).ok()? * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 1_714_566_896_789_012; // 2024-05-01T12:34:56.789012Z

    #[test]
    fn the_default_template_round_trips() {
        let t = Template::new(crate::config::DEFAULT_RECORD_PATH, ".mp4");
        let name = t.encode("live/cam", START);
        assert_eq!(name, "./recordings/live/cam/2024-05-01_12-34-56-789012.mp4");
        assert_eq!(t.decode(&name), Some(("live/cam".to_owned(), START)));
        assert_eq!(
            t.for_path("live/cam").decode(&name),
            Some((String::new(), START))
        );
        assert_eq!(t.common_dir(), "./recordings");
        assert_eq!(
            t.decode("./recordings/live/cam/2024-05-01_12-34-56.mp4"),
            None
        );
        assert_eq!(
            t.decode("./recordings/live/cam/2024-05-01_12-34-56-789012.ts"),
            None
        );
    }

    #[test]
    fn unix_seconds_and_every_placeholder() {
        let t = Template::new("/r/%path/%s-%f_%Y%m%d%H%M%S%z", ".ts");
        let name = t.encode("a", START);
        assert_eq!(name, "/r/a/1714566896-789012_20240501123456Z.ts");
        assert_eq!(t.decode(&name), Some(("a".to_owned(), START)));
        // Without %f the start is to the second.
        let t = Template::new("/r/%path/%s", ".mp4");
        assert_eq!(
            t.decode(&t.encode("x/y", START)),
            Some(("x/y".to_owned(), START / 1_000_000 * 1_000_000))
        );
    }

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(rfc3339_us(START), "2024-05-01T12:34:56.789012Z");
        assert_eq!(rfc3339_us(1_714_566_896_500_000), "2024-05-01T12:34:56.5Z");
        assert_eq!(rfc3339_us(1_714_566_896_000_000), "2024-05-01T12:34:56Z");
        assert_eq!(parse_rfc3339("2024-05-01T12:34:56.789012Z"), Some(START));
        assert_eq!(
            parse_rfc3339("2024-05-01T14:34:56.789012345+02:00"),
            Some(START)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:34:56Z"),
            Some(START / 1_000_000 * 1_000_000)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:34:56",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:34:56.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
