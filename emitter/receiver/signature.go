package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/webhook"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// ParseSecret returns the HMAC key of a Standard Webhooks secret (see
// webhook.ParseSecret).
func ParseSecret(s string) ([]byte, error) { return webhook.ParseSecret(s) }

// VerifySignature checks the Standard Webhooks headers of a delivery: the
// webhook-timestamp (Unix seconds) must lie within tolerance of now, and one
// of the space-separated "v1,<base64>" entries of webhook-signature must be
// the HMAC-SHA256, under one of secrets, of "<webhook-id>.<webhook-timestamp>.<body>".
// It returns nil when both hold and an error saying which failed otherwise.
func VerifySignature(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sigs, err := checkSignatureHeaders(h, now, tolerance)
	if err != nil {
		return err
	}
	id, ts := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp)
	var want [][]byte
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		want = append(want, mac.Sum(nil))
	}
	for _, got := range sigs {
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return fmt.Errorf("header %s holds no valid v1 signature of this body", HeaderWebhookSignature)
}

// checkSignatureHeaders checks what can be checked before the body is
// read: the three headers are present, webhook-timestamp is within
// tolerance of now, and webhook-signature holds at least one well-formed
// v1 entry (base64 of 32 bytes). It returns those entries, decoded.
func checkSignatureHeaders(h http.Header, now time.Time, tolerance time.Duration) ([][]byte, error) {
	id := h.Get(HeaderWebhookID)
	ts := h.Get(HeaderWebhookTimestamp)
	sigs := h.Get(HeaderWebhookSignature)
	switch {
	case id == "":
		return nil, fmt.Errorf("missing header %s", HeaderWebhookID)
	case ts == "":
		return nil, fmt.Errorf("missing header %s", HeaderWebhookTimestamp)
	case sigs == "":
		return nil, fmt.Errorf("missing header %s", HeaderWebhookSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("header %s is %.32q, want Unix seconds", HeaderWebhookTimestamp, ts)
	}
	// The distance is computed without overflow: with int64s, now-sec
	// wraps for sec near -2^63 and such a timestamp would pass.
	nowSec := now.Unix()
	var dist uint64
	dir := "past"
	if sec > nowSec {
		dist, dir = uint64(sec)-uint64(nowSec), "future"
	} else {
		dist = uint64(nowSec) - uint64(sec)
	}
	if dist > uint64(tolerance/time.Second) {
		return nil, fmt.Errorf("header %s is %d, %ds in the %s (tolerance %s)", HeaderWebhookTimestamp, sec, dist, dir, tolerance)
	}
	var decoded [][]byte
	for entry := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a, ...) or garbage: look for a v1 entry
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err == nil && len(got) == sha256.Size {
			decoded = append(decoded, got)
		}
	}
	if len(decoded) == 0 {
		return nil, fmt.Errorf("header %s holds no v1 entry (v1,<base64 of %d bytes>)", HeaderWebhookSignature, sha256.Size)
	}
	return decoded, nil
}
