// Verifying a QSM Webhooks delivery in Go (standard library only).
package qsmwebhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verify reports whether body (the raw request body) was signed with secret (whsec_…).
func Verify(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	id, ts := h.Get("X-QSM-Id"), h.Get("X-QSM-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	expected := []byte(hex.EncodeToString(mac.Sum(nil)))
	for _, sig := range strings.Fields(h.Get("X-QSM-Signature")) {
		if strings.HasPrefix(sig, "v1=") && hmac.Equal([]byte(sig[3:]), expected) {
			return true
		}
	}
	return false
}
