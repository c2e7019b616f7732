//! Get data token transaction count statistics (docs/api/data-tokens.md §3.12).

use crate::engine::Engine;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use privicore_domain::auth::Caller;
use privicore_domain::data_token::*;
use privicore_domain::{Error, Reason, Timestamp};
use serde_json::{Value, json};

pub struct Statistics(pub Value);

impl Engine {
    /// Transaction counts per bucket (§3.12).
    pub async fn statistics(
        &self,
        caller: &Caller,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        interval: &str,
        context: Option<Match>,
    ) -> Result<Statistics, Error> {
        let to = to.unwrap_or_else(Timestamp::now);
        let from = from.unwrap_or_else(|| to.plus_seconds(-30 * 86400));
        if to <= from {
            return Err(Reason::StatisticsInvalidRange.into());
        }
        let start = floor(from, interval);
        let mut buckets = vec![start];
        while *buckets.last().expect("one bucket") < to {
            if buckets.len() > 1000 {
                return Err(Reason::StatisticsRangeTooLarge.into());
            }
            let next = advance(*buckets.last().expect("one bucket"), interval);
            buckets.push(next);
        }
        let end = *buckets.last().expect("one bucket");
        buckets.pop();
        if buckets.len() > 1000 {
            return Err(Reason::StatisticsRangeTooLarge.into());
        }
        let events = self
            .store
            .event_counts(
                caller.profile_id,
                start,
                end,
                context.as_ref(),
                caller.application_id(),
            )
            .await?;
        const KINDS: [&str; 4] = [
            EVENT_EXCHANGED,
            EVENT_REQUESTED,
            EVENT_UPDATED,
            EVENT_DELETED,
        ];
        let mut counts = vec![[0u64; 4]; buckets.len()];
        let mut totals = [0u64; 4];
        for (kind, at) in events {
            let Some(k) = KINDS.iter().position(|x| *x == kind) else {
                continue;
            };
            let i = buckets.partition_point(|b| *b <= at).saturating_sub(1);
            counts[i][k] += 1;
            totals[k] += 1;
        }
        let items: Vec<Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let end = buckets.get(i + 1).copied().unwrap_or(end);
                json!({ "periodStart": b.rfc3339(), "periodEnd": end.rfc3339(),
                        "exchanged": counts[i][0], "requested": counts[i][1], "updated": counts[i][2], "deleted": counts[i][3] })
            })
            .collect();
        // docs/api/oauth.md §1.2: with an access token, the application's transactions
        // only, and the report says whose they are.
        let client_id = match caller.application_id() {
            Some(app) => self
                .store
                .oauth_application(app)
                .await?
                .map(|a| a.client_id),
            None => None,
        };
        Ok(Statistics(json!({
            "profileId": caller.profile_id.to_string(),
            "applicationId": caller.application_id().map(|a| a.to_string()),
            "clientId": client_id,
            "from": start.rfc3339(),
            "to": end.rfc3339(),
            "interval": interval,
            "totals": { "exchanged": totals[0], "requested": totals[1], "updated": totals[2], "deleted": totals[3] },
            "items": items,
        })))
    }
}

fn utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.unix(), 0).unwrap_or_default()
}

fn floor(t: Timestamp, interval: &str) -> Timestamp {
    let d = utc(t);
    let floored = match interval {
        "hour" => d.date_naive().and_hms_opt(d.hour(), 0, 0),
        "month" => d
            .date_naive()
            .with_day(1)
            .and_then(|x| x.and_hms_opt(0, 0, 0)),
        _ => d.date_naive().and_hms_opt(0, 0, 0),
    };
    Timestamp(
        floored
            .map(|n| Utc.from_utc_datetime(&n).timestamp())
            .unwrap_or(t.unix()),
    )
}

fn advance(t: Timestamp, interval: &str) -> Timestamp {
    let d = utc(t);
    let next = match interval {
        "hour" => d + ChronoDuration::hours(1),
        "month" => {
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .unwrap_or(d + ChronoDuration::days(31))
        }
        _ => d + ChronoDuration::days(1),
    };
    Timestamp(next.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_utc_boundaries() {
        let t = Timestamp::parse_rfc3339("2026-02-21T15:33:44Z").unwrap();
        assert_eq!(floor(t, "hour").rfc3339(), "2026-02-21T15:00:00+00:00");
        assert_eq!(floor(t, "day").rfc3339(), "2026-02-21T00:00:00+00:00");
        assert_eq!(floor(t, "month").rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(
            advance(floor(t, "month"), "month").rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        let dec = Timestamp::parse_rfc3339("2026-12-05T00:00:00Z").unwrap();
        assert_eq!(
            advance(floor(dec, "month"), "month").rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
    }
}
