package emitter

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// progress counts what a run read and delivered, for the progress line of
// a --once drain on a terminal.
type progress struct {
	read, done  atomic.Uint64 // events read; events delivered, dead-lettered or dropped
	first, last atomic.Int64  // times (ms) of the first and the latest event read
	lastLine    int
}

func (g *progress) onRead(eventTime int64) {
	g.read.Add(1)
	g.first.CompareAndSwap(0, eventTime)
	for {
		last := g.last.Load()
		if eventTime <= last || g.last.CompareAndSwap(last, eventTime) {
			return
		}
	}
}

// line renders the state at now: a bar of how far the events read have come
// from the first one towards now, the counts and the reading rate.
func (g *progress) line(now time.Time, rate float64) string {
	const width = 24
	first, last := g.first.Load(), g.last.Load()
	frac := 0.0
	if span := now.UnixMilli() - first; first > 0 && span > 0 {
		frac = min(1, max(0, float64(last-first)/float64(span)))
	}
	n := int(frac * width)
	at := "-"
	if last > 0 {
		at = time.UnixMilli(last).UTC().Format("2006-01-02 15:04:05")
	}
	return fmt.Sprintf("[%s%s] %3.0f%% read %d, done %d, %.0f events/s, at %s",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*frac, g.read.Load(), g.done.Load(), rate, at)
}

// show rewrites the progress line on w every interval until ctx is done,
// then prints it a last time and ends the line.
func (g *progress) show(ctx context.Context, w io.Writer, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	prev, prevAt := uint64(0), time.Now()
	draw := func(now time.Time) {
		read := g.read.Load()
		rate := float64(read-prev) / now.Sub(prevAt).Seconds()
		prev, prevAt = read, now
		s := g.line(now, rate)
		pad := max(0, g.lastLine-len(s))
		g.lastLine = len(s)
		fmt.Fprintf(w, "\r%s%s", s, strings.Repeat(" ", pad))
	}
	for {
		select {
		case <-ctx.Done():
			draw(time.Now())
			fmt.Fprintln(w)
			return
		case now := <-t.C:
			draw(now)
		}
	}
}
