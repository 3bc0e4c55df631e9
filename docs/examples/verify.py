import base64, hashlib, hmac, time

def verify(secret: str, headers, body: bytes) -> bool:
    """headers: case-insensitive, like Flask's or Django's request.headers; body: the raw bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = headers["X-QSM-Id"], headers["X-QSM-Timestamp"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return any(s.startswith("v1=") and hmac.compare_digest(s[3:], expected)
               for s in headers["X-QSM-Signature"].split())
