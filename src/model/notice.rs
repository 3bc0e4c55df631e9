//! Notices: the operational events the system raises about its own endpoints, deliveries and
//! sources (docs/operator.md), as typed values. Each variant's fields are its `data`, as its
//! JSON Schema in `schemas/v1/` says; the dispatcher posts them to the operator's webhook and
//! mails those that ask someone to act.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::delivery::FailureCode;
use crate::model::health::DisabledReason;

/// One notice. Serialized as `{"type": …, "data": {…}}`; [`Notice::data`] is the `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Notice {
    /// The first dead delivery with no success since the endpoint began failing.
    #[serde(rename = "endpoint.failing")]
    EndpointFailing {
        endpoint_id: String,
        url: String,
        /// RFC 3339.
        fail_since: Option<String>,
        /// When the failure rule will disable it (RFC 3339); `None` when it never will.
        disable_at: Option<String>,
        last_status_code: Option<u16>,
        last_error_code: Option<FailureCode>,
    },
    /// Disabled by a 410 or by the failure rule: its new events are held.
    #[serde(rename = "endpoint.disabled")]
    EndpointDisabled {
        endpoint_id: String,
        url: String,
        reason: DisabledReason,
        fail_since: Option<String>,
        /// Deliveries held so far.
        held: i64,
        last_status_code: Option<u16>,
        last_error_code: Option<FailureCode>,
    },
    /// Enabled again after the system disabled it.
    #[serde(rename = "endpoint.enabled")]
    EndpointEnabled { endpoint_id: String, url: String, replayed: i64, discarded: i64 },
    /// A delivery went dead.
    #[serde(rename = "delivery.exhausted")]
    DeliveryExhausted {
        delivery_id: String,
        event_id: String,
        endpoint_id: String,
        attempts: u32,
        last_status_code: Option<u16>,
        last_error_code: Option<FailureCode>,
    },
    /// On a FIFO endpoint that blocks on dead deliveries, one went dead: its key waits for a
    /// person to retry or discard it.
    #[serde(rename = "endpoint.key_blocked")]
    KeyBlocked {
        endpoint_id: String,
        ordering_key: String,
        delivery_id: String,
        event_id: String,
        attempts: u32,
        last_status_code: Option<u16>,
        last_error_code: Option<FailureCode>,
    },
    /// An inbound source accepted nothing for longer than its expected gap.
    #[serde(rename = "source.silent")]
    SourceSilent { source_id: String, name: String, last_accepted_at: Option<String>, expected_gap_seconds: i64 },
    /// Most of an inbound source's requests of the last hour were rejected.
    #[serde(rename = "source.verification_failing")]
    SourceVerificationFailing { source_id: String, name: String, requests: i64, rejected: i64, top_reason: String },
}

impl Notice {
    /// Its type, as its envelope and its schema name it (`endpoint.failing`).
    pub fn event_type(&self) -> &'static str {
        match self {
            Notice::EndpointFailing { .. } => "endpoint.failing",
            Notice::EndpointDisabled { .. } => "endpoint.disabled",
            Notice::EndpointEnabled { .. } => "endpoint.enabled",
            Notice::DeliveryExhausted { .. } => "delivery.exhausted",
            Notice::KeyBlocked { .. } => "endpoint.key_blocked",
            Notice::SourceSilent { .. } => "source.silent",
            Notice::SourceVerificationFailing { .. } => "source.verification_failing",
        }
    }

    /// Its `data` object.
    pub fn data(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a notice serializes");
        v["data"].take()
    }

    /// Reads a notice back from its type and `data`; `None` for a type or data this program
    /// does not know (a newer version wrote it).
    pub fn parse(event_type: &str, data: &Value) -> Option<Notice> {
        serde_json::from_value(serde_json::json!({"type": event_type, "data": data})).ok()
    }

    /// Whether it is also mailed to `WEBHOOKS_OPERATOR_EMAIL`: the notices that ask someone to
    /// act.
    pub fn is_mailed(&self) -> bool {
        !matches!(self, Notice::EndpointEnabled { .. } | Notice::DeliveryExhausted { .. })
    }

    /// The endpoint it is about, if any.
    pub fn endpoint_id(&self) -> Option<&str> {
        match self {
            Notice::EndpointFailing { endpoint_id, .. }
            | Notice::EndpointDisabled { endpoint_id, .. }
            | Notice::EndpointEnabled { endpoint_id, .. }
            | Notice::DeliveryExhausted { endpoint_id, .. }
            | Notice::KeyBlocked { endpoint_id, .. } => Some(endpoint_id),
            Notice::SourceSilent { .. } | Notice::SourceVerificationFailing { .. } => None,
        }
    }

    /// The inbound source it is about, if any.
    pub fn source_id(&self) -> Option<&str> {
        match self {
            Notice::SourceSilent { source_id, .. } | Notice::SourceVerificationFailing { source_id, .. } => {
                Some(source_id)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema;

    fn every_kind() -> Vec<Notice> {
        vec![
            Notice::EndpointFailing {
                endpoint_id: "ep_1".into(),
                url: "https://r.example/h".into(),
                fail_since: Some("2026-01-01T00:00:00Z".into()),
                disable_at: None,
                last_status_code: Some(500),
                last_error_code: Some(FailureCode::HttpStatus),
            },
            Notice::EndpointDisabled {
                endpoint_id: "ep_1".into(),
                url: "https://r.example/h".into(),
                reason: DisabledReason::Gone,
                fail_since: None,
                held: 3,
                last_status_code: Some(410),
                last_error_code: Some(FailureCode::Gone),
            },
            Notice::EndpointEnabled {
                endpoint_id: "ep_1".into(),
                url: "https://r.example/h".into(),
                replayed: 2,
                discarded: 0,
            },
            Notice::DeliveryExhausted {
                delivery_id: "dlv_1".into(),
                event_id: "evt_1".into(),
                endpoint_id: "ep_1".into(),
                attempts: 5,
                last_status_code: None,
                last_error_code: Some(FailureCode::Timeout),
            },
            Notice::KeyBlocked {
                endpoint_id: "ep_1".into(),
                ordering_key: "order-1042".into(),
                delivery_id: "dlv_1".into(),
                event_id: "evt_1".into(),
                attempts: 5,
                last_status_code: Some(500),
                last_error_code: Some(FailureCode::HttpStatus),
            },
            Notice::SourceSilent {
                source_id: "src_1".into(),
                name: "stripe".into(),
                last_accepted_at: None,
                expected_gap_seconds: 86_400,
            },
            Notice::SourceVerificationFailing {
                source_id: "src_1".into(),
                name: "stripe".into(),
                requests: 6,
                rejected: 5,
                top_reason: "signature_mismatch".into(),
            },
        ]
    }

    #[test]
    fn every_notice_reads_back_as_itself_and_its_data_meets_its_schema() {
        let kinds = every_kind();
        assert_eq!(kinds.len(), schema::OPERATIONAL.len(), "one example per operational event");
        for n in kinds {
            let data = n.data();
            assert_eq!(Notice::parse(n.event_type(), &data), Some(n.clone()));
            let envelope = crate::model::event::operational("evt_x", n.event_type(), "alice", data, 0);
            let mut problems = Vec::new();
            schema::validate(&schema::find(n.event_type()).unwrap().schema, &envelope, "", &mut problems);
            assert!(problems.is_empty(), "{}: {problems:?}", n.event_type());
        }
    }

    #[test]
    fn the_data_says_codes_and_reasons_as_their_stable_names() {
        let d = every_kind()[1].data();
        assert_eq!(d["reason"], "gone");
        assert_eq!(d["last_error_code"], "E_GONE");
        assert_eq!(d["held"], 3);
        assert!(Notice::parse("endpoint.renamed", &d).is_none(), "an unknown type");
    }

    #[test]
    fn only_what_asks_someone_to_act_is_mailed() {
        let mailed: Vec<&str> = every_kind().iter().filter(|n| n.is_mailed()).map(Notice::event_type).collect();
        assert_eq!(
            mailed,
            [
                "endpoint.failing",
                "endpoint.disabled",
                "endpoint.key_blocked",
                "source.silent",
                "source.verification_failing"
            ]
        );
    }
}
