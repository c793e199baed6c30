//! Delivery reports from SMS gateways. Kannel calls the `dlr-url` the SMS was sent with:
//! `{public_url}/v1/dlr/kannel?t={token}&status=%d`, where Kannel fills in `%d`, its
//! delivery status. The daemon serves that route and records what `kannel_event` returns.

use super::tracking::{verify, TokenError};
use crate::domain::Channel;
use crate::engine::{Claims, TokenKind};
use crate::engine::{Event, Millis};

/// The event a Kannel delivery report records: `received` when the phone got it (status 1),
/// `bounced` when it was not delivered (2) or the SMSC rejected it (16); None for reports
/// that change nothing (4 queued on the SMSC, 8 delivered to the SMSC). The event id makes a
/// repeated report a duplicate. A token that is not a delivery token is refused.
pub fn kannel_event(
    secret: &[u8],
    token: &str,
    status: &str,
    now: Millis,
) -> Result<Option<Event>, TokenError> {
    let claims = verify(secret, token)?;
    if claims.kind != TokenKind::Delivery {
        return Err(TokenError::Malformed);
    }
    let status: u32 = status.trim().parse().map_err(|_| TokenError::Malformed)?;
    let kind = match status {
        1 => "received",
        2 | 16 => "bounced",
        _ => return Ok(None),
    };
    let reason = format!("Kannel delivery report {status}");
    Ok(Some(report_event(claims, kind, status.into(), reason, now)))
}

/// The event of a delivery report about the message of `claims`: `received` or `bounced`
/// (with `reason`), its provider's status kept as `dlr_status`. The event id makes a
/// repeated report a duplicate.
fn report_event(
    claims: Claims,
    kind: &str,
    status: serde_json::Value,
    reason: String,
    now: Millis,
) -> Event {
    let mut properties = serde_json::Map::new();
    properties.insert("dlr_status".into(), status);
    if kind == "bounced" {
        properties.insert("reason".into(), reason.into());
    }
    Event {
        id: Some(format!("dlr:{}:{kind}", claims.message_id)),
        contact: claims.contact,
        kind: kind.into(),
        at: now,
        properties,
        context: None,
        journey: Some(claims.journey),
        message: Some(claims.message),
        link: None,
        channel: Some(Channel::Sms),
        message_id: Some(claims.message_id),
    }
}

/// The event a Twilio status callback records (`MessageStatus`): `received` for
/// `delivered`, `bounced` for `undelivered` and `failed` (with Twilio's `ErrorCode`); None
/// for the statuses on the way (`queued`, `sending`, `sent`, `accepted`…).
pub fn twilio_event(
    secret: &[u8],
    token: &str,
    status: &str,
    error_code: Option<&str>,
    now: Millis,
) -> Result<Option<Event>, TokenError> {
    let claims = verify(secret, token)?;
    if claims.kind != TokenKind::Delivery {
        return Err(TokenError::Malformed);
    }
    let kind = match status.trim() {
        "delivered" => "received",
        "undelivered" | "failed" => "bounced",
        _ => return Ok(None),
    };
    let code = error_code.unwrap_or("").trim();
    let reason = format!("Twilio status {} {code}", status.trim())
        .trim()
        .to_string();
    Ok(Some(report_event(
        claims,
        kind,
        status.trim().into(),
        reason,
        now,
    )))
}

pub use crate::engine::AWAITS_REPORT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::tracking::sign;
    use crate::engine::Claims;

    fn token(kind: TokenKind) -> String {
        sign(
            b"k",
            &Claims {
                kind,
                contact: "c1".into(),
                message_id: "3:day_of_event".into(),
                journey: "event_reminder".into(),
                message: "day_of_event".into(),
                link: None,
                url: None,
            },
        )
    }

    #[test]
    fn reports_become_received_or_bounced() {
        let t = token(TokenKind::Delivery);
        let e = kannel_event(b"k", &t, "1", 5).unwrap().unwrap();
        assert_eq!(e.kind, "received");
        assert_eq!(e.contact, "c1");
        assert_eq!(e.message_id.as_deref(), Some("3:day_of_event"));
        assert_eq!(e.channel, Some(Channel::Sms));
        assert_eq!(
            kannel_event(b"k", &t, "16", 5).unwrap().unwrap().kind,
            "bounced"
        );
        assert_eq!(kannel_event(b"k", &t, "8", 5).unwrap(), None);
        assert!(kannel_event(b"other", &t, "1", 5).is_err());
        // A click token is no delivery report.
        assert!(kannel_event(b"k", &token(TokenKind::Click), "1", 5).is_err());
    }

    #[test]
    fn twilio_statuses_become_received_or_bounced() {
        let t = token(TokenKind::Delivery);
        let e = twilio_event(b"k", &t, "delivered", None, 5)
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, "received");
        assert_eq!(e.message_id.as_deref(), Some("3:day_of_event"));
        let b = twilio_event(b"k", &t, "undelivered", Some("30003"), 5)
            .unwrap()
            .unwrap();
        assert_eq!(b.kind, "bounced");
        assert_eq!(b.properties["reason"], "Twilio status undelivered 30003");
        assert_eq!(twilio_event(b"k", &t, "sent", None, 5).unwrap(), None);
        assert!(twilio_event(b"x", &t, "delivered", None, 5).is_err());
    }
}
