package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
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

// secretPrefix marks a Standard Webhooks secret; base64 follows it.
const secretPrefix = "whsec_"

// ParseSecret returns the HMAC key of a Standard Webhooks secret: the
// base64 text after an optional "whsec_" prefix, decoded. Surrounding white
// space is ignored.
func ParseSecret(s string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(s), secretPrefix)
	if b64 == "" {
		return nil, errors.New("signing secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// The error would quote secret material: say only where it broke.
		return nil, fmt.Errorf("signing secret is not %q followed by standard base64 (%d characters)", secretPrefix, len(b64))
	}
	if len(key) == 0 {
		return nil, errors.New("signing secret decodes to no bytes")
	}
	return key, nil
}

// VerifySignature checks the Standard Webhooks headers of a delivery: the
// webhook-timestamp (Unix seconds) must lie within tolerance of now, and one
// of the space-separated "v1,<base64>" entries of webhook-signature must be
// the HMAC-SHA256, under one of secrets, of "<webhook-id>.<webhook-timestamp>.<body>".
// It returns nil when both hold and an error saying which failed otherwise.
func VerifySignature(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id := h.Get(HeaderWebhookID)
	ts := h.Get(HeaderWebhookTimestamp)
	sigs := h.Get(HeaderWebhookSignature)
	switch {
	case id == "":
		return fmt.Errorf("missing header %s", HeaderWebhookID)
	case ts == "":
		return fmt.Errorf("missing header %s", HeaderWebhookTimestamp)
	case sigs == "":
		return fmt.Errorf("missing header %s", HeaderWebhookSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("header %s is %.32q, want Unix seconds", HeaderWebhookTimestamp, ts)
	}
	skew := now.Unix() - sec
	if skew > int64(tolerance/time.Second) || -skew > int64(tolerance/time.Second) {
		return fmt.Errorf("header %s is %d, %ds away from now (tolerance %s)", HeaderWebhookTimestamp, sec, skew, tolerance)
	}
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
	for entry := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a, ...) or garbage: look for a v1 entry
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return fmt.Errorf("header %s holds no valid v1 signature of this body", HeaderWebhookSignature)
}
