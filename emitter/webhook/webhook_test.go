package webhook

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

var secretA, secretB = []byte("a shared signing key of 32 bytes"), []byte("another key")

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseSecretTakesBase64AfterAnOptionalPrefixAndNeverQuotesIt(t *testing.T) {
	cases := []struct {
		in      string
		want    []byte
		wantErr string
	}{
		{in: "whsec_" + base64.StdEncoding.EncodeToString(secretA), want: secretA},
		{in: base64.StdEncoding.EncodeToString(secretB) + "\n", want: secretB},
		{in: "  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  ", want: mustB64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{in: "", wantErr: "empty"},
		{in: "whsec_", wantErr: "empty"},
		{in: "whsec_not base64!", wantErr: "standard base64 (11 characters)"},
	}
	for _, tc := range cases {
		got, err := ParseSecret(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSecret(%q) err = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "not base64!") {
				t.Errorf("ParseSecret error quotes the secret: %v", err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("ParseSecret(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
