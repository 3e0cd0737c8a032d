// Package webhook holds what the sender and the receiver of Standard
// Webhooks (standardwebhooks.com) share: the form of a signing secret.
package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix marks a Standard Webhooks secret; base64 follows it.
const SecretPrefix = "whsec_"

// ParseSecret returns the HMAC key of a Standard Webhooks secret: the
// base64 text after an optional "whsec_" prefix, decoded. Surrounding white
// space is ignored. Its errors never quote the secret.
func ParseSecret(s string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if b64 == "" {
		return nil, errors.New("signing secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// The error would quote secret material: say only where it broke.
		return nil, fmt.Errorf("signing secret is not %q followed by standard base64 (%d characters)", SecretPrefix, len(b64))
	}
	if len(key) == 0 {
		return nil, errors.New("signing secret decodes to no bytes")
	}
	return key, nil
}
