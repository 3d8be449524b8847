//! Injected faults: rules from the config or added at run time through the Inspector, matched by
//! method and path substring, firing with a probability and/or a fixed number of times. Kinds:
//! 503 (with or without Retry-After), 504, added latency, a connection reset before the handler
//! runs, and a response lost after the handler committed (connection closed). Every fault that
//! fires is written to the fault log.

use serde::{Deserialize, Serialize};

use super::errors::EmulatorError;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 503 ServiceUnavailable (Retry-After when the rule sets `retry_after`).
    #[serde(rename = "503")]
    ServiceUnavailable,
    /// 504 GatewayTimeout.
    #[serde(rename = "504")]
    GatewayTimeout,
    /// Adds `latency_ms` (scaled) before the handler.
    #[serde(rename = "latency")]
    Latency,
    /// Drops the connection before the handler runs: nothing is stored.
    #[serde(rename = "reset")]
    Reset,
    /// Runs the handler (the item is stored), then drops the connection instead of answering.
    #[serde(rename = "lost-response")]
    LostResponse,
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (any when absent), case-insensitive.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the request path to match (every path when empty).
    #[serde(default)]
    pub path_contains: String,
    /// What happens.
    pub kind: FaultKind,
    /// Chance of firing for each matching request, 0..=1 (always when absent).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Fire at most this many times (unlimited when absent).
    #[serde(default)]
    pub count: Option<u32>,
    /// Let the first `skip` matching requests through.
    #[serde(default)]
    pub skip: u32,
    /// Retry-After of a 503, service seconds.
    #[serde(default)]
    pub retry_after: Option<f64>,
    /// Added latency, service milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

impl FaultRule {
    /// A rule that fires on every request matching `method` and `path_contains`.
    pub fn new(method: Option<&str>, path_contains: &str, kind: FaultKind) -> Self {
        FaultRule {
            method: method.map(str::to_owned),
            path_contains: path_contains.to_owned(),
            kind,
            probability: None,
            count: None,
            skip: 0,
            retry_after: None,
            latency_ms: None,
        }
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), EmulatorError> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(EmulatorError::Config(format!(
                "fault probability {p} is not within 0..=1"
            )));
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err(EmulatorError::Config(
                "a latency fault needs latency_ms".into(),
            ));
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }
}

/// One fault that fired.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FaultLogEntry {
    /// When, RFC 3339.
    pub at: String,
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// What was done.
    pub kind: FaultKind,
    /// The request id the emulator gave the request.
    pub request_id: String,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<(FaultRule, u32, u32)>,
    pub log: Vec<FaultLogEntry>,
}

impl Faults {
    pub fn new(rules: &[FaultRule]) -> Self {
        Faults {
            rules: rules.iter().map(|r| (r.clone(), 0, 0)).collect(),
            log: Vec::new(),
        }
    }

    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push((rule, 0, 0));
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|(r, _, _)| r.clone()).collect()
    }

    /// The first rule that fires for this request, logged.
    pub fn pick(&mut self, method: &str, path: &str, request_id: &str) -> Option<FaultRule> {
        for (rule, matched, fired) in &mut self.rules {
            if !rule.matches(method, path) {
                continue;
            }
            *matched += 1;
            if *matched <= rule.skip || rule.count.is_some_and(|c| *fired >= c) {
                continue;
            }
            if let Some(p) = rule.probability
                && rand::random::<f64>() >= p
            {
                continue;
            }
            *fired += 1;
            self.log.push(FaultLogEntry {
                at: chrono::Utc::now().to_rfc3339(),
                method: method.to_owned(),
                path: path.to_owned(),
                kind: rule.kind,
                request_id: request_id.to_owned(),
            });
            return Some(rule.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_skip_and_method_are_honoured() {
        let mut rule =
            FaultRule::new(Some("post"), "/messages", FaultKind::GatewayTimeout).times(2);
        rule.skip = 1;
        let mut f = Faults::new(&[rule]);
        assert!(f.pick("GET", "/v1.0/users/a/messages", "r").is_none());
        assert!(
            f.pick("POST", "/v1.0/users/a/messages", "r").is_none(),
            "skipped"
        );
        assert!(f.pick("POST", "/v1.0/users/a/messages", "r").is_some());
        assert!(f.pick("POST", "/v1.0/users/a/messages", "r").is_some());
        assert!(
            f.pick("POST", "/v1.0/users/a/messages", "r").is_none(),
            "count used up"
        );
        assert_eq!(f.log.len(), 2);
    }

    #[test]
    fn probability_zero_never_fires_and_toml_kinds_parse() {
        let mut r = FaultRule::new(None, "", FaultKind::Reset);
        r.probability = Some(0.0);
        let mut f = Faults::new(&[r]);
        assert!((0..50).all(|_| f.pick("GET", "/x", "r").is_none()));
        let r: FaultRule = toml::from_str("kind = \"503\"\nretry_after = 1.5").unwrap();
        assert_eq!(r.kind, FaultKind::ServiceUnavailable);
        let bad: FaultRule = toml::from_str("kind = \"latency\"").unwrap();
        assert!(bad.validate().is_err());
    }
}
