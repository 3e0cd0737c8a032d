package receiver

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerifySignatureWindowHasNoOverflow signs timestamps at the ends of
// int64 with the right key: only those within the tolerance pass. With
// now-ts computed in int64, ts = now-2^63 made the distance wrap to -2^63,
// whose negation is still negative, and passed.
func TestVerifySignatureWindowHasNoOverflow(t *testing.T) {
	body := []byte(`{"uid":42}`)
	tol := 5 * time.Minute
	n := now.Unix()
	for _, tc := range []struct {
		name string
		now  time.Time
		ts   int64
		ok   bool
	}{
		{"now", now, n, true},
		{"tolerance in the past", now, n - 300, true},
		{"tolerance in the future", now, n + 300, true},
		{"a second too old", now, n - 301, false},
		{"a second too new", now, n + 301, false},
		{"now minus 2^63", now, n + math.MinInt64, false},
		{"now minus 2^63, plus one", now, n + math.MinInt64 + 1, false},
		{"min int64", now, math.MinInt64, false},
		{"max int64", now, math.MaxInt64, false},
		{"max int64 from a clock before 1970", time.Unix(-1_000, 0), math.MaxInt64, false},
		{"min int64 at the far end of time", time.Unix(math.MaxInt64-1, 0), math.MinInt64, false},
		{"max int64 at the far end of time", time.Unix(math.MaxInt64-1, 0), math.MaxInt64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := strconv.FormatInt(tc.ts, 10)
			h := http.Header{}
			h.Set(HeaderWebhookID, "msg_1")
			h.Set(HeaderWebhookTimestamp, ts)
			h.Set(HeaderWebhookSignature, sign(secretA, "msg_1", ts, body))
			err := VerifySignature([][]byte{secretA}, h, body, tc.now, tol)
			if tc.ok && err != nil {
				t.Fatalf("ts %d at %d: %v, want accepted", tc.ts, tc.now.Unix(), err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "tolerance")) {
				t.Fatalf("ts %d at %d: err = %v, want refused as outside the tolerance", tc.ts, tc.now.Unix(), err)
			}
		})
	}
}

// TestVerifySignatureRefusesMalformedSignatureHeaders pins the checks made
// before the body is read.
func TestVerifySignatureRefusesMalformedSignatureHeaders(t *testing.T) {
	body := []byte(`{"uid":42}`)
	good := sign(secretA, "msg_1", nowTS, body)
	for _, tc := range []struct {
		name, id, ts, sig, want string
	}{
		{"no id", "", nowTS, good, "missing header webhook-id"},
		{"no timestamp", "msg_1", "", good, "missing header webhook-timestamp"},
		{"no signature", "msg_1", nowTS, "", "missing header webhook-signature"},
		{"timestamp not a number", "msg_1", "soon", good, `header webhook-timestamp is "soon"`},
		{"timestamp beyond int64", "msg_1", "9223372036854775808", good, "want Unix seconds"},
		{"only another scheme", "msg_1", nowTS, "v1a,AAAA", "no v1 entry"},
		{"v1 of the wrong length", "msg_1", nowTS, "v1,AAAA", "no v1 entry"},
		{"v1 not base64", "msg_1", nowTS, "v1,!!!", "no v1 entry"},
		{"wrong signature", "msg_1", nowTS, sign(secretB, "msg_1", nowTS, body), "no valid v1 signature"},
		{"good after garbage", "msg_1", nowTS, "v1,AAAA v1a,x " + good, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(HeaderWebhookID, tc.id)
			h.Set(HeaderWebhookTimestamp, tc.ts)
			h.Set(HeaderWebhookSignature, tc.sig)
			err := VerifySignature([][]byte{secretA}, h, body, now, time.Minute)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
