//! The shared signing vectors (`tests/vectors/signing.json`), which the PHP client's tests read
//! too: the Rust signer and verifier agree with every case, so the two can never drift.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use webhooks::model::secret;
use webhooks::outbound::signing::{self, Family, VerifyError};

fn vectors() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/signing.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn reason(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::MissingHeader(_) => "missing_header",
        VerifyError::BadTimestamp => "bad_timestamp",
        VerifyError::TooOld { .. } => "too_old",
        VerifyError::TooNew { .. } => "too_new",
        VerifyError::NoSignature => "no_signature",
        VerifyError::Mismatch => "mismatch",
    }
}

#[test]
fn every_signing_vector_is_what_the_signer_makes() {
    let v = vectors();
    let cases = v["sign"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let key = secret::decode(c["secret"].as_str().unwrap()).unwrap();
        let mac = signing::sign(
            &key,
            c["id"].as_str().unwrap(),
            c["timestamp"].as_i64().unwrap(),
            c["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(signing::hex(&mac), c["hex"].as_str().unwrap(), "{}", c["name"]);
        assert_eq!(STANDARD.encode(mac), c["base64"].as_str().unwrap(), "{}", c["name"]);
    }
}

#[test]
fn every_verification_vector_gets_its_answer() {
    let v = vectors();
    let cases = v["verify"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let (mut valid, mut invalid) = (0, 0);
    for c in cases {
        let keys: Vec<Vec<u8>> =
            c["secrets"].as_array().unwrap().iter().map(|s| secret::decode(s.as_str().unwrap()).unwrap()).collect();
        let headers: Vec<(String, String)> = c["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let got = signing::verify(
            c["prefix"].as_str().unwrap(),
            &headers,
            c["body"].as_str().unwrap().as_bytes(),
            &keys,
            c["tolerance"].as_i64().unwrap(),
            c["now"].as_i64().unwrap(),
        );
        let name = c["name"].as_str().unwrap();
        match (c["valid"].as_bool().unwrap(), got) {
            (true, Ok(family)) => {
                let want = if c["family"] == "qsm" { Family::Qsm } else { Family::StandardWebhooks };
                assert_eq!(family, want, "{name}");
                valid += 1;
            }
            (false, Err(e)) => {
                assert_eq!(reason(&e), c["error"].as_str().unwrap(), "{name}: {e}");
                invalid += 1;
            }
            (want, got) => panic!("{name}: expected valid={want}, got {got:?}"),
        }
    }
    assert!(valid >= 8 && invalid >= 10, "{valid} valid, {invalid} invalid");
}
