package emitter

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestProgressLineShowsHowFarTheEventsReadHaveComeTowardsNow(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	tests := []struct {
		name  string
		times []int64
		want  string
	}{
		{"nothing read", nil, "[                        ]   0% read 0, done 0"},
		{"half way", []int64{500_000, 750_000}, "[============            ]  50% read 2, done 0"},
		{"caught up", []int64{500_000, 1_000_000}, "[========================] 100% read 2, done 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g progress
			for _, tm := range tt.times {
				g.onRead(tm)
			}
			if got := g.line(now, 0); !strings.HasPrefix(got, tt.want) {
				t.Errorf("line = %q, want it to start with %q", got, tt.want)
			}
		})
	}
}

func TestProgressShowRewritesOneLineAndEndsIt(t *testing.T) {
	var g progress
	g.onRead(time.Now().Add(-time.Hour).UnixMilli())
	g.done.Add(1)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	g.show(ctx, &out, 10*time.Millisecond)
	s := out.String()
	if !strings.HasPrefix(s, "\r[") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("output %q: want lines rewritten with \\r and one final newline", s)
	}
	if !strings.Contains(s, "read 1, done 1") {
		t.Errorf("output %q lacks the counts", s)
	}
}
