package receiver

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// BenchmarkStorePut measures Put alone (no HTTP) from one and from many
// goroutines, and reports rows stored per second.
func BenchmarkStorePut(b *testing.B) {
	open := map[string]func(b *testing.B, opts StoreOptions) store{
		"jsonl": func(b *testing.B, opts StoreOptions) store {
			s, err := OpenJSONL(filepath.Join(b.TempDir(), "events.jsonl"), opts)
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func(b *testing.B, opts StoreOptions) store {
			s, err := OpenPostgres(context.Background(), testenv.NewDatabase(b), opts)
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, kind := range []string{"jsonl", "postgres"} {
		for _, noSync := range []bool{false, true} {
			for _, workers := range []int{1, 64} {
				b.Run(fmt.Sprintf("%s/sync=%v/workers=%d", kind, !noSync, workers), func(b *testing.B) {
					s := open[kind](b, StoreOptions{NoSync: noSync, Logger: quiet})
					defer s.Close()
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					start := time.Now()
					for range workers {
						wg.Go(func() {
							for uid := next.Add(1); uid <= int64(b.N); uid = next.Add(1) {
								if _, err := s.Put(context.Background(), row(uid)); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
				})
			}
		}
	}
}
