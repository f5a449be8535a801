//! Upstream failures as [`UpstreamError`]s: a status with the provider's
//! message (and `Retry-After`), a connection that could not be made or broke
//! off, each scrubbed of secrets. Shared by both clients (`super::call`).

use std::time::Duration;

use serde_json::Value;

use crate::generation::UpstreamError;
use crate::providers::wire;
use crate::redact::Redactor;

/// How much of an upstream error body is read for its message.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The body broke off mid-stream; `why` is the transport's account.
pub fn broke(why: &str, redactor: &Redactor) -> UpstreamError {
    let message = format!("the upstream connection failed mid-stream: {why}");
    UpstreamError::Stream(redactor.scrub(&message))
}

/// reqwest's failure to send the request or to read the response head.
pub fn send_error(
    err: &reqwest::Error,
    connect_timeout: Duration,
    redactor: &Redactor,
) -> UpstreamError {
    if err.is_connect() && err.is_timeout() {
        return UpstreamError::ConnectTimeout(connect_timeout);
    }
    unreachable_upstream(&describe(err), redactor)
}

/// The wire client's failure to send the request or to read the head.
pub fn wire_send_error(
    err: &wire::SendError,
    connect_timeout: Duration,
    redactor: &Redactor,
) -> UpstreamError {
    match err {
        wire::SendError::ConnectTimeout => UpstreamError::ConnectTimeout(connect_timeout),
        wire::SendError::Connect(_)
        | wire::SendError::Io(_)
        | wire::SendError::Closed
        | wire::SendError::Head(_)
        | wire::SendError::Http2 => unreachable_upstream(&err.to_string(), redactor),
    }
}

fn unreachable_upstream(why: &str, redactor: &Redactor) -> UpstreamError {
    let message = format!("could not reach the upstream: {why}");
    UpstreamError::Transport(redactor.scrub(&message))
}

/// An upstream error status, with the message from (the first
/// [`ERROR_BODY_LIMIT`] bytes of) its body and its `Retry-After`.
pub fn status_error(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    redactor: &Redactor,
) -> UpstreamError {
    let retry_after = retry_after.and_then(|v| retry_after_secs(v, std::time::SystemTime::now()));
    let json = serde_json::from_slice::<Value>(body).ok();
    let error = json.as_ref().map(|json| json.get("error").unwrap_or(json));
    let message = match error {
        Some(error) => error_message(error),
        None => String::from_utf8_lossy(body).chars().take(500).collect(),
    };
    if status == 400 && error.is_some_and(refuses_content) {
        return UpstreamError::ContentPolicy(redactor.scrub(message.trim()));
    }
    UpstreamError::Status {
        status,
        message: redactor.scrub(message.trim()),
        retry_after,
    }
}

/// Whether an upstream's error object refuses the request's content on
/// policy grounds: OpenAI's `content_policy_violation`, Azure OpenAI's
/// `content_filter` (its `code`, or `innererror.code`
/// `ResponsibleAIPolicyViolation`).
fn refuses_content(error: &Value) -> bool {
    let named = |field: &Value| {
        field.as_str().is_some_and(|name| {
            matches!(
                name,
                "content_filter" | "content_policy_violation" | "ResponsibleAIPolicyViolation"
            )
        })
    };
    named(&error["code"]) || named(&error["type"]) || named(&error["innererror"]["code"])
}

/// `Retry-After` as whole seconds from `now`: delay-seconds, or an
/// HTTP-date (a date already past is 0).
fn retry_after_secs(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map_or(0, |d| d.as_secs_f64().ceil() as u64),
    )
}

/// The human message in an OpenAI-style error object (or whatever it is).
pub fn error_message(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        Value::Object(fields) => fields
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string()),
        other => other.to_string(),
    }
}

/// A transport error and its causes. Callers pass it `without_url()`: the
/// upstream's address is the operator's business, not the client's.
pub fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::retry_after_secs;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after_secs(" 7 ", now), Some(7));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after_secs(&later, now), Some(30));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after_secs(&earlier, now), Some(0));
        assert_eq!(retry_after_secs("soon", now), None);
    }
}
