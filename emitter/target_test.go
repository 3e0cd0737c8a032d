package emitter

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStartWarnsAboutABasicPasswordWithAColonWithoutShowingIt(t *testing.T) {
	for _, tc := range []struct {
		password string
		warned   bool
	}{
		{"abc:def", true},
		{"plain-secret", false},
	} {
		var logs strings.Builder
		cfg := validConfig()
		cfg.Username, cfg.Password = "kc-0", tc.password
		cfg.DeadLetterPath = t.TempDir() + "/dead.jsonl"
		if _, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registry: prometheus.NewRegistry()}); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "keycloak-bridge") &&
			strings.Contains(logs.String(), "403")
		if warned != tc.warned || strings.Contains(logs.String(), tc.password) {
			t.Errorf("password %q: warned %v, want %v; log:\n%s", tc.password, warned, tc.warned, logs.String())
		}
	}
}
