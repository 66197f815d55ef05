//! Test controls that act on requests: injected failures (the next N
//! requests of a verb answer 500, 429 or 503), a delay before every
//! response, and the log of handled requests tests assert on ("an unchanged
//! object was never rewritten").

use std::time::Duration;

use crate::route::Verb;
use crate::status::ApiError;

/// Fails the next `count` requests that match `verb` and `plural` (None
/// matches any) with `code`: 500 InternalError, 429 TooManyRequests (with
/// Retry-After) or 503 ServiceUnavailable.
#[derive(Clone, Debug)]
pub struct FaultRule {
    pub verb: Option<Verb>,
    pub plural: Option<String>,
    pub count: usize,
    pub code: u16,
}

impl FaultRule {
    pub fn new(verb: Option<Verb>, count: usize, code: u16) -> Self {
        Self {
            verb,
            plural: None,
            count,
            code,
        }
    }

    pub fn on(mut self, plural: &str) -> Self {
        self.plural = Some(plural.to_string());
        self
    }
}

/// The error an injected fault answers with.
pub fn fault_error(code: u16) -> ApiError {
    match code {
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "injected: too many requests, please try again later",
        )
        .with_details(serde_json::json!({"retryAfterSeconds": 1})),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "injected: the server is currently unable to handle the request",
        ),
        code => ApiError::new(
            code,
            "InternalError",
            "injected: an error on the server prevented the request from succeeding",
        ),
    }
}

/// Injected failures and delays.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
    pub delay: Option<Duration>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
        self.delay = None;
    }

    /// Consumes one matching rule, returning the code to fail with.
    pub fn take(&mut self, verb: Verb, plural: Option<&str>) -> Option<u16> {
        let rule = self.rules.iter_mut().find(|r| {
            r.count > 0
                && r.verb.is_none_or(|v| v == verb)
                && r.plural.as_deref().is_none_or(|p| Some(p) == plural)
        })?;
        rule.count -= 1;
        let code = rule.code;
        self.rules.retain(|r| r.count > 0);
        Some(code)
    }
}

/// One handled request.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub verb: Verb,
    pub method: String,
    pub path: String,
    pub query: String,
    pub group: String,
    /// Plural resource name, "" for discovery.
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
    pub field_manager: String,
    /// HTTP status of the response (200 for a watch that started).
    pub code: u16,
}

impl RequestRecord {
    /// A write that the server accepted.
    pub fn is_accepted_write(&self) -> bool {
        self.verb.is_write() && (200..300).contains(&self.code)
    }
}
