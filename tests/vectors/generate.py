#!/usr/bin/env python3
"""Writes tests/vectors/signing.json: signing and verification cases for every implementation of
the delivery signature (the Rust library, the PHP client's Webhook::verify, docs' snippets).

Computed here with Python's own hmac/hashlib, independently of the implementations under test;
the first signing case is Standard Webhooks' published vector. Run it again only to add cases:
`python3 tests/vectors/generate.py > tests/vectors/signing.json`.
"""
import base64, hashlib, hmac, json

def key(secret):
    return base64.b64decode(secret[len("whsec_"):])

def mac(secret, msg_id, ts, body):
    return hmac.new(key(secret), f"{msg_id}.{ts}.".encode() + body.encode(), hashlib.sha256).digest()

STD = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
NEW = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER = "whsec_" + base64.b64encode(b"\xff" * 32).decode()
NOW = 1700000000
ID = "evt_01JEKZ3M9Q4T7Y2W8R6N5B1C0D"
BODY = '{"type":"email.forwarded","data":{"alias":"hello@alice.example","size_bytes":4096}}'

sign_cases = []
for name, secret, msg_id, ts, body in [
    ("standard_webhooks_published_vector", STD, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     '{"email":"test@example.com","username":"test_user"}'),
    ("qsm_event", NEW, ID, NOW, BODY),
    ("unicode_body", OLD, ID, NOW, '{"name":"Zoë ☃","emoji":"🙂","quote":"\\"x\\""}'),
    ("empty_body", NEW, "evt_empty", NOW, ""),
    ("whitespace_kept", NEW, ID, NOW, '{ "a" : 1 }\n'),
]:
    m = mac(secret, msg_id, ts, body)
    sign_cases.append({"name": name, "secret": secret, "id": msg_id, "timestamp": ts, "body": body,
                       "hex": m.hex(), "base64": base64.b64encode(m).decode()})

def qsm(secrets_signing, ts=NOW, body=BODY, prefix="X-QSM", msg_id=ID, lower=False):
    sig = " ".join("v1=" + mac(s, msg_id, ts, body).hex() for s in secrets_signing)
    h = {f"{prefix}-Id": msg_id, f"{prefix}-Timestamp": str(ts), f"{prefix}-Signature": sig}
    return {k.lower(): v for k, v in h.items()} if lower else h

def std(secrets_signing, ts=NOW, body=BODY, msg_id=ID):
    sig = " ".join("v1," + base64.b64encode(mac(s, msg_id, ts, body)).decode() for s in secrets_signing)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}

def case(name, secrets, headers, body=BODY, expect="qsm", prefix="X-QSM", now=NOW, tolerance=300):
    c = {"name": name, "secrets": secrets, "prefix": prefix, "headers": headers, "body": body,
         "now": now, "tolerance": tolerance}
    if expect in ("qsm", "standard"):
        c["valid"], c["family"] = True, expect
    else:
        c["valid"], c["error"] = False, expect
    return c

bad_std = std([OTHER])["webhook-signature"]
verify_cases = [
    case("qsm_headers", [NEW], qsm([NEW])),
    case("standard_headers", [NEW], std([NEW]), expect="standard"),
    case("header_names_any_case", [NEW], qsm([NEW], lower=True)),
    case("rotation_receiver_knows_the_old_secret_only", [OLD], qsm([NEW, OLD])),
    case("rotation_receiver_knows_both", [NEW, OLD], qsm([OLD])),
    case("standard_several_signatures", [OLD], std([NEW, OLD]), expect="standard"),
    case("other_schemes_ignored", [NEW], {**qsm([NEW]), "X-QSM-Signature": "v2=abcd " + qsm([NEW])["X-QSM-Signature"]}),
    case("custom_prefix", [NEW], qsm([NEW], prefix="X-Acme-Hook"), prefix="X-Acme-Hook"),
    case("both_families_qsm_preferred", [NEW], {**std([NEW]), **qsm([NEW])}),
    case("at_the_tolerance", [NEW], qsm([NEW], ts=NOW - 300)),
    case("tampered_body", [NEW], qsm([NEW]), body=BODY.replace("4096", "4097"), expect="mismatch"),
    case("wrong_secret", [OTHER], qsm([NEW]), expect="mismatch"),
    case("standard_wrong_secret", [NEW], {**std([NEW]), "webhook-signature": bad_std}, expect="mismatch"),
    case("qsm_headers_win_even_when_wrong", [NEW], {**std([NEW]), **qsm([OTHER])}, expect="mismatch"),
    case("too_old", [NEW], qsm([NEW], ts=NOW - 301), expect="too_old"),
    case("too_new", [NEW], qsm([NEW], ts=NOW + 301), expect="too_new"),
    case("timestamp_not_whole_seconds", [NEW], {**qsm([NEW]), "X-QSM-Timestamp": "1.7e9"}, expect="bad_timestamp"),
    case("no_signature_header", [NEW], {"X-QSM-Id": ID, "X-QSM-Timestamp": str(NOW)}, expect="missing_header"),
    case("no_id_header", [NEW], {k: v for k, v in qsm([NEW]).items() if k != "X-QSM-Id"}, expect="missing_header"),
    case("no_v1_signature", [NEW], {**qsm([NEW]), "X-QSM-Signature": "v2=abcd"}, expect="no_signature"),
    case("signature_not_hex", [NEW], {**qsm([NEW]), "X-QSM-Signature": "v1=zz"}, expect="no_signature"),
]

print(json.dumps({
    "description": "Delivery signatures (docs/signing.md). sign: HMAC-SHA256 of '{id}.{timestamp}.{body}' "
                   "keyed with the base64-decoded part of the whsec_ secret, as hex (X-QSM-Signature: v1=<hex>) "
                   "and base64 (webhook-signature: v1,<base64>). verify: headers as received, the receiver's "
                   "secrets, the header prefix, the time and the tolerance in seconds; valid with the family "
                   "that verified (qsm or standard) or the reason it did not (missing_header, bad_timestamp, "
                   "too_old, too_new, no_signature, mismatch). Generated by tests/vectors/generate.py.",
    "sign": sign_cases,
    "verify": verify_cases,
}, indent=2, ensure_ascii=False))
