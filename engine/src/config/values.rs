//! Value types of the configuration, each parsed from the text an operator writes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Number of data-plane cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cores {
    /// Every allowed CPU but one for the control plane (all of them on a machine of two or fewer).
    #[default]
    Auto,
    Count(u16),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so the YAML error keeps the value's location.
        struct CoresVisitor;
        impl de::Visitor<'_> for CoresVisitor {
            type Value = Cores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto` or a number of cores from 1 to 1024")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Cores, E> {
                match u16::try_from(n) {
                    Ok(n) if (1..=1024).contains(&n) => Ok(Cores::Count(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Cores, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cores, E> {
                if s == "auto" {
                    return Ok(Cores::Auto);
                }
                match s.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(CoresVisitor)
    }
}

/// A listen address. `:1935` (MediaMTX style) means every IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress(pub SocketAddr);

impl ListenAddress {
    pub fn any_v4(port: u16) -> Self {
        ListenAddress(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    }
    pub fn localhost_v4(port: u16) -> Self {
        ListenAddress(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }
}

impl FromStr for ListenAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let full = if s.starts_with(':') {
            format!("0.0.0.0{s}")
        } else {
            s.to_owned()
        };
        full.parse::<SocketAddr>().map(ListenAddress).map_err(|_| {
            format!("`{s}` is not a listen address (expected `:PORT`, `IP:PORT` or `[IPv6]:PORT`)")
        })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<ListenAddress>::new(
            "a listen address such as `:1935`",
        ))
    }
}

/// A duration written as MediaMTX writes them: `10s`, `500ms`, `1m30s`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl FromStr for Millis {
    type Err = String;
    /// Go's `time.ParseDuration` units (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, decimals
    /// allowed), a leading `Nd` for days and a bare `0`, as MediaMTX reads durations; rounded
    /// down to the millisecond. Negative durations are refused: nothing here waits backwards.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a duration (expected e.g. `500ms`, `10s`, `1m30s`, `1d`)");
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        if rest == "0" {
            return Ok(Millis(0));
        }
        // Nanoseconds, so that `1.5us` + `999.5us` add up as Go adds them.
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .ok_or_else(bad)?;
            let number = &rest[..number_len];
            if number.is_empty() || number == "." || number.matches('.').count() > 1 {
                return Err(bad());
            }
            rest = &rest[number_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale: u128 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                // Days only lead, as in MediaMTX (`1d12h`).
                "d" if total == 0 => 86_400_000_000_000,
                _ => return Err(bad()),
            };
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
            let mut unit = scale;
            for digit in fraction.bytes() {
                unit /= 10;
                part += u128::from(digit - b'0') * unit;
            }
            total = total.checked_add(part).ok_or_else(bad)?;
            rest = &rest[unit_len..];
        }
        u64::try_from(total / 1_000_000)
            .map(Millis)
            .map_err(|_| bad())
    }
}

/// A size written as MediaMTX writes them (`50M`, `1.5GB`, `512KiB`, `100B`): binary units,
/// any case; the number of bytes.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a size (expected e.g. `50M`, `1G`, `512K`, `100B`)");
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        "E" | "EB" | "EIB" => 60,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !(0.0..u64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<Millis>::new("a duration such as `10s`"))
    }
}

impl Serialize for Cores {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cores::Auto => s.serialize_str("auto"),
            Cores::Count(n) => s.serialize_u16(*n),
        }
    }
}

impl Serialize for ListenAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Millis {
    /// The shortest text [`Millis::from_str`] reads back: `500ms`, `10s`, `1m30s`, `2h`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        let sub_second = ms % 1000;
        if sub_second > 0 {
            return write!(f, "{ms}ms");
        }
        let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size written as MediaMTX writes them (`50M`, `1.5GB`, a bare number of bytes); the number
/// of bytes. Shown back as MediaMTX shows it, with the largest binary unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        for (shift, unit) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl de::Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `50M`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// Parses a scalar through `FromStr` inside the visitor, so YAML errors keep the value's location
/// and key path (errors raised after deserializing lose both).
struct FromStrVisitor<T> {
    expecting: &'static str,
    _parsed: std::marker::PhantomData<T>,
}

impl<T> FromStrVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        FromStrVisitor {
            expecting,
            _parsed: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = String>> de::Visitor<'_> for FromStrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("500ms".parse::<Millis>(), Ok(Millis(500)));
        assert_eq!("10s".parse::<Millis>(), Ok(Millis(10_000)));
        assert_eq!("1m30s".parse::<Millis>(), Ok(Millis(90_000)));
        assert_eq!("2h".parse::<Millis>(), Ok(Millis(7_200_000)));
        assert_eq!("1.5s".parse::<Millis>(), Ok(Millis(1_500)));
        assert_eq!("1d12h".parse::<Millis>(), Ok(Millis(129_600_000)));
        assert_eq!("0".parse::<Millis>(), Ok(Millis(0)));
        assert_eq!("300us".parse::<Millis>(), Ok(Millis(0)));
        assert_eq!("2500us".parse::<Millis>(), Ok(Millis(2)));
        for bad in ["", "10", "s", "10 s", "1x", "-1s", "1h1d", "1..5s", ".s"] {
            assert!(bad.parse::<Millis>().is_err(), "{bad}");
        }
        for ms in [0, 500, 1_500, 10_000, 90_000, 7_200_000, 3_661_000] {
            let text = Millis(ms).to_string();
            assert_eq!(text.parse::<Millis>(), Ok(Millis(ms)), "{text}");
        }
        assert_eq!(Millis(90_000).to_string(), "1m30s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("1.5KB"), Ok(1536));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        for bad in ["", "50", "M", "5X", "-1M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ":1935".parse::<ListenAddress>().unwrap().to_string(),
            "0.0.0.0:1935"
        );
        assert_eq!(
            "[::1]:80".parse::<ListenAddress>().unwrap().to_string(),
            "[::1]:80"
        );
        assert!("localhost".parse::<ListenAddress>().is_err());
    }
}
