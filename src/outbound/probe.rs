//! The test button: one `webhook.test` delivery to one endpoint, sent now and synchronously with
//! `WEBHOOKS_TEST_TIMEOUT`, signed like every delivery. Nothing is stored: the result is shown.

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::model::endpoint::Endpoint;
use crate::model::secret::Keyring;
use crate::model::{schema, time, Result};
use crate::outbound::send::Sender;
use crate::outbound::signing;
use crate::store::{endpoints, Db};

#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub endpoint_id: String,
    pub url: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error_code: Option<String>,
    /// The failure code in words.
    pub error_meaning: Option<String>,
    pub error: Option<String>,
    pub response_snippet: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: String,
}

pub fn send_test(db: Db<'_>, cfg: &Config, keyring: &Keyring, ep: &Endpoint) -> Result<TestResult> {
    let now = time::now_ms();
    let keys = endpoints::signing_keys(db, keyring, &ep.id, now)?;
    let id = time::new_id("evt");
    let body = json!({
        "id": id,
        "type": "webhook.test",
        "schema_version": schema::SCHEMA_VERSION,
        "created_at": time::rfc3339(now),
        "user": ep.user,
        "data": {"message": format!("This is a test delivery from QSM Webhooks to endpoint {}.", ep.id)},
    })
    .to_string();
    let mut headers = signing::headers(
        &cfg.header_prefix,
        &keys,
        &signing::Delivery {
            event_id: &id,
            event_type: "webhook.test",
            attempt: 1,
            timestamp: now / 1000,
            body: body.as_bytes(),
        },
    );
    let (custom, compat) = endpoints::custom_headers(db, keyring, &ep.id)?;
    signing::add_endpoint_headers(&mut headers, &custom, compat, keys.first(), body.as_bytes());
    let outcome = Sender::with_timeout(cfg, cfg.test_timeout).post(&ep.url, &headers, body.as_bytes());
    // The custom headers' values are sealed: the result shows that they were sent, not what.
    for (name, value) in headers.iter_mut() {
        if custom.contains_key(name) {
            *value = "(sealed)".to_string();
        }
    }
    let meaning = outcome.error_code.map(|c| c.meaning().to_string());
    Ok(TestResult {
        endpoint_id: ep.id.clone(),
        url: ep.url.clone(),
        delivered: outcome.delivered(),
        status_code: outcome.status_code,
        duration_ms: outcome.duration_ms,
        error_code: outcome.error_code.map(|c| c.as_str().to_string()),
        error_meaning: meaning,
        error: outcome.error,
        response_snippet: outcome.snippet,
        request_headers: headers,
        request_body: body,
    })
}
