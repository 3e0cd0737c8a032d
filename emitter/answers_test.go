package emitter

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
)

func TestAnswerTableDeadLettersAnswersAboutTheEventAndHoldsOnAnswersAboutTheTarget(t *testing.T) {
	def := DefaultConfig()
	moved := newAnswers([]int{400, 404, 413, 422}, []int{401, 403, 410, 409})
	for _, tc := range []struct {
		status        int
		def, moved    answerAction
		senderRetries bool // by default
	}{
		{400, deadLetterAnswer, deadLetterAnswer, false},
		{401, holdAnswer, holdAnswer, false},
		{403, holdAnswer, holdAnswer, false},
		{404, holdAnswer, deadLetterAnswer, false},
		{410, holdAnswer, holdAnswer, false},
		{413, deadLetterAnswer, deadLetterAnswer, false},
		{422, deadLetterAnswer, deadLetterAnswer, false},
		{409, retryAnswer, holdAnswer, true},
		{408, retryAnswer, retryAnswer, true},
		{429, retryAnswer, retryAnswer, true},
		{500, retryAnswer, retryAnswer, true},
		{503, retryAnswer, retryAnswer, true},
		{308, retryAnswer, retryAnswer, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			a := newAnswers(def.DeadLetterStatuses, def.HoldStatuses)
			err := fmt.Errorf("sending uid 1: %w", &httpsender.StatusError{Status: tc.status, RetryAfter: 3 * time.Second})
			r := a.classify(err)
			if r.action != tc.def || r.status != tc.status {
				t.Errorf("default: %v for status %d, want %v", r.action, r.status, tc.def)
			}
			if tc.def != retryAnswer && (r.retryAfter != 3*time.Second || r.hint() == "" || !strings.HasPrefix(r.answer(), strconv.Itoa(tc.status)+" ")) {
				t.Errorf("retryAfter %s, answer %q, hint %q", r.retryAfter, r.answer(), r.hint())
			}
			if got := a.retry(tc.status, nil); got != tc.senderRetries {
				t.Errorf("the sender retries %d: %v, want %v", tc.status, got, tc.senderRetries)
			}
			if got := moved.classify(err).action; got != tc.moved {
				t.Errorf("with 404 moved to the dead letters and 409 to hold: %v, want %v", got, tc.moved)
			}
		})
	}
}

// TestTLSFailuresHoldTheRoute makes real TLS failures through the sender:
// each is handed back at once (not retried by the sender) and holds.
func TestTLSFailuresHoldTheRoute(t *testing.T) {
	def := DefaultConfig()
	a := newAnswers(def.DeadLetterStatuses, def.HoldStatuses)
	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	mtls.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes fail on purpose
	mtls.StartTLS()
	defer mtls.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mtls.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	for _, tc := range []struct {
		name, url, caFile string
		hint              string
	}{
		{"certificate of an unknown authority", mtls.URL, "", "--caFile"},
		{"wrong host name", strings.Replace(mtls.URL, "127.0.0.1", "localhost", 1), caFile, "--caFile"},
		{"client certificate required", mtls.URL, caFile, "--clientCertFile"},
		{"not TLS at all", strings.Replace(plain.URL, "http:", "https:", 1), "", "http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := httpsender.New(httpsender.Options{URL: tc.url, CAFile: tc.caFile, Retry: a.retry,
				RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = s.Send(ctx, "1", []byte(`{}`))
			if ctx.Err() != nil {
				t.Fatalf("Send retried until the deadline: %v", err)
			}
			r := a.classify(err)
			if r.action != holdAnswer || r.answer() != "TLS" || !strings.Contains(r.hint(), tc.hint) {
				t.Errorf("Send = %v: %v, answer %q, hint %q; want hold, TLS, a hint naming %s", err, r.action, r.answer(), r.hint(), tc.hint)
			}
		})
	}
	// A refused connection is a passing failure: the sender retries it.
	if a.retry(0, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")) != true {
		t.Error("a refused connection is not retried")
	}
}

// TestREADMEShowsTheAnswerTable keeps the README's table of the target's
// answers equal to answerTable: every status row, its default action.
func TestREADMEShowsTheAnswerTable(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `?(\\d{3})`? [^|]*\\| ([a-z-]+)")
	shown := map[int]string{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		n, _ := strconv.Atoi(m[1])
		shown[n] = m[2]
	}
	for _, r := range answerTable {
		if shown[r.status] != r.action.String() {
			t.Errorf("README row of %d: %q, want %q", r.status, shown[r.status], r.action)
		}
		delete(shown, r.status)
	}
	for st, act := range shown {
		t.Errorf("README has a row for %d (%s) that answerTable lacks", st, act)
	}
	for _, want := range []string{"--deadLetterStatuses", "--holdStatuses", "TLS"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("README does not mention %s", want)
		}
	}
}

func TestConfigRefusesAStatusOnBothSidesOrOutsideTheAnswers(t *testing.T) {
	for _, tc := range []struct {
		name             string
		deadLetter, hold []int
		field, value     string
		want             string
	}{
		{"on both sides", []int{400, 404, 413, 422}, []int{401, 403, 404, 410}, "deadLetterStatuses", "400,404,413,422", "404 is also in --holdStatuses"},
		{"a success", []int{400}, []int{200}, "holdStatuses", "200", "300..599"},
		{"not a status", []int{4000}, nil, "deadLetterStatuses", "4000", "300..599"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.DeadLetterStatuses, c.HoldStatuses = tc.deadLetter, tc.hold
			var fe *FieldError
			err := c.Validate()
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Value != tc.value || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want a FieldError of %s %q saying %q", err, tc.field, tc.value, tc.want)
			}
		})
	}
	c := validConfig()
	c.DeadLetterStatuses, c.HoldStatuses = []int{}, []int{400, 401, 403, 404, 410, 413, 422}
	if err := c.Validate(); err != nil {
		t.Errorf("every status held, none dead-lettered: %v", err)
	}
}

func TestAPermanentSinkErrorIsDeadLetteredAndAPassingOneRetried(t *testing.T) {
	a := newAnswers(DefaultConfig().DeadLetterStatuses, DefaultConfig().HoldStatuses)
	for _, tc := range []struct {
		name string
		err  error
		want answerAction
	}{
		{"permanent", permanentError{"record too large"}, deadLetterAnswer},
		{"permanent, wrapped", fmt.Errorf("uid 7: %w", permanentError{"unknown topic"}), deadLetterAnswer},
		{"not permanent", notPermanent{}, retryAnswer},
		{"plain", errors.New("broker not reachable"), retryAnswer},
	} {
		if got := a.classify(tc.err).action; got != tc.want {
			t.Errorf("%s: classify(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

type notPermanent struct{}

func (notPermanent) Error() string   { return "a request timed out" }
func (notPermanent) Permanent() bool { return false }
