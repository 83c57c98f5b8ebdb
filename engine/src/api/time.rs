//! RFC 3339 timestamps (what MediaMTX's JSON carries) from Unix milliseconds, without a date crate:
//! the calendar is the recordings' (`record::path::Civil`).

use crate::record::path::Civil;

/// `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let c = Civil::from_unix(unix_ms / 1000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
    }
}
