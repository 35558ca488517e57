//! `SluiceParameters.StartingPositionTimestamp` (Lambda's `AT_TIMESTAMP`), validated: epoch
//! seconds (a JSON number, or digits in a string, as a `sluice:` tag carries it) or an RFC 3339
//! date and time, never in the future. Kafka's offsets-for-times lookup takes milliseconds.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::definition::StartingTimestamp;

/// The field, as errors name it.
pub const FIELD: &str = "SluiceParameters.StartingPositionTimestamp";

/// The timestamp in milliseconds since the epoch, or why it is not acceptable. `now_ms` is the
/// present (a parameter, so the rule is testable).
pub fn starting_timestamp_ms(value: &StartingTimestamp, now_ms: i64) -> Result<i64, String> {
    let ms = match value {
        StartingTimestamp::EpochSeconds(s) => seconds_to_ms(*s)?,
        StartingTimestamp::Text(t) => {
            let t = t.trim();
            match t.parse::<f64>() {
                Ok(s) => seconds_to_ms(s)?,
                Err(_) => {
                    let at = OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
                        format!(
                            "must be epoch seconds or an RFC 3339 date and time (2024-05-01T12:00:00Z), not {t:?}: {e}"
                        )
                    })?;
                    (at.unix_timestamp_nanos() / 1_000_000) as i64
                }
            }
        }
    };
    if ms > now_ms {
        return Err(format!(
            "is in the future ({ms} ms since the epoch, now is {now_ms}); no record can be at or after it yet"
        ));
    }
    Ok(ms)
}

fn seconds_to_ms(s: f64) -> Result<i64, String> {
    // Up to the year 9999: beyond, RFC 3339 cannot say it and Kafka timestamps never get there.
    if !s.is_finite() || !(0.0..=253_402_300_799.0).contains(&s) {
        return Err(format!(
            "epoch seconds must be between 0 and 253402300799, not {s}"
        ));
    }
    Ok((s * 1000.0).round() as i64)
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_717_243_200_000; // 2024-06-01T12:00:00Z

    fn text(t: &str) -> StartingTimestamp {
        StartingTimestamp::Text(t.into())
    }

    #[test]
    fn epoch_seconds_and_rfc_3339_give_milliseconds() {
        let n = StartingTimestamp::EpochSeconds(1_714_564_800.0);
        assert_eq!(starting_timestamp_ms(&n, NOW), Ok(1_714_564_800_000));
        let frac = StartingTimestamp::EpochSeconds(1_714_564_800.25);
        assert_eq!(starting_timestamp_ms(&frac, NOW), Ok(1_714_564_800_250));
        assert_eq!(
            starting_timestamp_ms(&text(" 1714564800 "), NOW),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            starting_timestamp_ms(&text("2024-05-01T12:00:00Z"), NOW),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            starting_timestamp_ms(&text("2024-05-01T14:00:00.5+02:00"), NOW),
            Ok(1_714_564_800_500)
        );
    }

    #[test]
    fn the_future_and_garbage_are_refused_with_the_reason() {
        let e = starting_timestamp_ms(&text("2024-06-01T12:00:01Z"), NOW).unwrap_err();
        assert!(e.starts_with("is in the future"), "{e}");
        assert!(starting_timestamp_ms(&text("2024-06-01T12:00:00Z"), NOW).is_ok());
        let e = starting_timestamp_ms(&text("yesterday"), NOW).unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("\"yesterday\""), "{e}");
        let e = starting_timestamp_ms(&StartingTimestamp::EpochSeconds(-1.0), NOW).unwrap_err();
        assert!(e.contains("between 0 and"), "{e}");
        assert!(starting_timestamp_ms(&text("NaN"), NOW).is_err());
    }
}
