package buffer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParsePolicyAcceptsTheTwoNamesAndNamesABadValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		err  bool
	}{
		{"drop-oldest", DropOldest, false},
		{"block", Block, false},
		{"", 0, true},
		{"Block", 0, true},
		{"drop_oldest", 0, true},
	} {
		got, err := ParsePolicy(tc.in)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
				t.Errorf("ParsePolicy(%q) = %v, %v; want an error naming the value", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNewRejectsNoCapacityAndUnknownPolicy(t *testing.T) {
	if _, err := New[int](0, DropOldest, nil); err == nil {
		t.Error("New(0) succeeded")
	}
	if _, err := New[int](1, Policy(7), nil); err == nil {
		t.Error("New with Policy(7) succeeded")
	}
}

func mustNew[T any](t testing.TB, capacity int, p Policy, onDrop func(T)) *Ring[T] {
	t.Helper()
	r, err := New(capacity, p, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func takeN(t *testing.T, r *Ring[int], n int) []int {
	t.Helper()
	var got []int
	for range n {
		v, err := r.Take(context.Background())
		if err != nil {
			t.Fatalf("Take after %v: %v", got, err)
		}
		got = append(got, v)
	}
	return got
}

func TestTakeReturnsItemsInPutOrder(t *testing.T) {
	for _, p := range []Policy{DropOldest, Block} {
		r := mustNew[int](t, 4, p, nil)
		for i := range 4 {
			if err := r.Put(context.Background(), i); err != nil {
				t.Fatal(err)
			}
		}
		if r.Len() != 4 || r.Cap() != 4 {
			t.Fatalf("%v: Len %d Cap %d, want 4 4", p, r.Len(), r.Cap())
		}
		if got := takeN(t, r, 4); !slices.Equal(got, []int{0, 1, 2, 3}) {
			t.Errorf("%v: took %v", p, got)
		}
	}
}

func TestDropOldestEvictsExactlyTheOldestQueuedItems(t *testing.T) {
	var dropped []int
	r := mustNew(t, 3, DropOldest, func(v int) { dropped = append(dropped, v) })
	for i := range 7 {
		if err := r.Put(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(dropped, []int{0, 1, 2, 3}) {
		t.Errorf("dropped %v, want [0 1 2 3]", dropped)
	}
	if got := takeN(t, r, 3); !slices.Equal(got, []int{4, 5, 6}) {
		t.Errorf("kept %v, want [4 5 6]", got)
	}
}

func TestDropOldestNeverEvictsATakenItem(t *testing.T) {
	var dropped []int
	r := mustNew(t, 2, DropOldest, func(v int) { dropped = append(dropped, v) })
	ctx := context.Background()
	_ = r.Put(ctx, 1)
	inFlight, _ := r.Take(ctx) // the consumer is sending 1
	for i := 2; i <= 6; i++ {
		_ = r.Put(ctx, i)
	}
	if inFlight != 1 || slices.Contains(dropped, 1) {
		t.Fatalf("in flight %d, dropped %v: the taken item must not be evicted", inFlight, dropped)
	}
	if !slices.Equal(dropped, []int{2, 3, 4}) || r.Len() != 2 {
		t.Errorf("dropped %v, Len %d; want [2 3 4] and 2 (capacity counts queued items only)", dropped, r.Len())
	}
}

func TestBlockPutWaitsForRoomAndKeepsEverything(t *testing.T) {
	r := mustNew[int](t, 2, Block, nil)
	ctx := context.Background()
	_ = r.Put(ctx, 1)
	_ = r.Put(ctx, 2)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Put(cancelled, 99); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put on a full ring with a cancelled context = %v, want context.Canceled", err)
	}

	done := make(chan error)
	go func() { done <- r.Put(ctx, 3) }()
	if got := takeN(t, r, 1); got[0] != 1 {
		t.Fatalf("took %v, want 1", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked Put = %v after room was made", err)
	}
	if got := takeN(t, r, 2); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("took %v, want [2 3] (99 must not have been queued)", got)
	}
}

func TestCloseRejectsPutsAndLetsTheConsumerDrain(t *testing.T) {
	for _, p := range []Policy{DropOldest, Block} {
		r := mustNew[int](t, 2, p, nil)
		ctx := context.Background()
		_ = r.Put(ctx, 1)
		_ = r.Put(ctx, 2)
		var blocked chan error
		if p == Block {
			blocked = make(chan error)
			go func() { blocked <- r.Put(ctx, 3) }()
		}
		r.Close()
		r.Close()
		if blocked != nil {
			if err := <-blocked; !errors.Is(err, ErrClosed) {
				t.Errorf("%v: Put waiting for room when closed = %v, want ErrClosed", p, err)
			}
		}
		if err := r.Put(ctx, 4); !errors.Is(err, ErrClosed) {
			t.Errorf("%v: Put after Close = %v, want ErrClosed", p, err)
		}
		if got := takeN(t, r, 2); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("%v: drained %v, want [1 2]", p, got)
		}
		if _, err := r.Take(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("%v: Take on a closed empty ring = %v, want ErrClosed", p, err)
		}
	}
}

func TestTakeOnAnEmptyRingReturnsWhenTheContextEnds(t *testing.T) {
	r := mustNew[int](t, 1, Block, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if _, err := r.Take(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Take = %v, want context.Canceled", err)
	}
}

// TestConcurrentProducersKeepTheirOrder runs several producers against one
// consumer (run it with -race): every item is either taken or dropped,
// exactly once, and each producer's items arrive in the order it put them.
func TestConcurrentProducersKeepTheirOrder(t *testing.T) {
	const producers, perProducer = 4, 2000
	for _, p := range []Policy{Block, DropOldest} {
		var mu sync.Mutex
		dropped := 0
		r := mustNew(t, 16, p, func([2]int) { mu.Lock(); dropped++; mu.Unlock() })
		var wg sync.WaitGroup
		for id := range producers {
			wg.Go(func() {
				for i := range perProducer {
					if err := r.Put(context.Background(), [2]int{id, i}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		go func() { wg.Wait(); r.Close() }()
		last := make([]int, producers)
		for i := range last {
			last[i] = -1
		}
		taken := 0
		for {
			v, err := r.Take(context.Background())
			if errors.Is(err, ErrClosed) {
				break
			}
			if r.Len() > r.Cap() {
				t.Fatalf("Len %d > Cap %d", r.Len(), r.Cap())
			}
			if v[1] <= last[v[0]] {
				t.Fatalf("%v: producer %d item %d after %d", p, v[0], v[1], last[v[0]])
			}
			last[v[0]] = v[1]
			taken++
		}
		if taken+dropped != producers*perProducer || (p == Block && dropped != 0) {
			t.Errorf("%v: taken %d + dropped %d, want %d in all", p, taken, dropped, producers*perProducer)
		}
	}
}

func BenchmarkPutTake(b *testing.B) {
	for _, p := range []Policy{DropOldest, Block} {
		b.Run(p.String(), func(b *testing.B) {
			r := mustNew[int](b, 1024, p, nil)
			ctx := context.Background()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := r.Take(ctx); err != nil {
						return
					}
				}
			}()
			b.ResetTimer()
			for i := range b.N {
				_ = r.Put(ctx, i)
			}
			r.Close()
			<-done
		})
	}
}

func BenchmarkPutTakeParallelProducers(b *testing.B) {
	for _, p := range []Policy{DropOldest, Block} {
		b.Run(p.String(), func(b *testing.B) {
			r := mustNew[int](b, 1024, p, nil)
			ctx := context.Background()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := r.Take(ctx); err != nil {
						return
					}
				}
			}()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = r.Put(ctx, 1)
				}
			})
			r.Close()
			<-done
		})
	}
}

func mustNewSized(t testing.TB, maxBytes int64, p Policy, onDrop func(string)) *Ring[string] {
	t.Helper()
	r, err := NewSized(100, maxBytes, func(s string) int64 { return int64(len(s)) }, p, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func takeAll(t *testing.T, r *Ring[string]) []string {
	t.Helper()
	var got []string
	for r.Len() > 0 {
		v, err := r.Take(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	return got
}

func TestNewSizedRejectsANegativeByteCapacityOrNoSize(t *testing.T) {
	if _, err := NewSized[string](1, -1, func(string) int64 { return 1 }, Block, nil); err == nil {
		t.Error("NewSized with -1 bytes succeeded")
	}
	if _, err := NewSized[string](1, 10, nil, Block, nil); err == nil {
		t.Error("NewSized with bytes and no size function succeeded")
	}
}

func TestDropOldestBytesEvictsTheOldestUntilTheNewItemFits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		puts     []string
		dropped  []string
		queued   []string
		maxBytes int64
	}{
		{"within the bound", []string{"aaaa", "bbbb", "cc"}, nil, []string{"aaaa", "bbbb", "cc"}, 10},
		{"one over", []string{"aaaa", "bbbb", "cccc"}, []string{"aaaa"}, []string{"bbbb", "cccc"}, 10},
		{"a big one evicts several", []string{"aa", "bb", "cc", "dddddddd"}, []string{"aa", "bb"}, []string{"cc", "dddddddd"}, 10},
		{"larger than the bound: queued alone", []string{"aa", "bb", "x123456789abc"}, []string{"aa", "bb"}, []string{"x123456789abc"}, 10},
		{"no byte bound", []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb"}, nil, []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dropped []string
			r := mustNewSized(t, tc.maxBytes, DropOldest, func(s string) { dropped = append(dropped, s) })
			for _, p := range tc.puts {
				if err := r.Put(context.Background(), p); err != nil {
					t.Fatal(err)
				}
			}
			wantBytes := int64(0)
			for _, q := range tc.queued {
				wantBytes += int64(len(q))
			}
			if tc.maxBytes > 0 && r.Bytes() != wantBytes {
				t.Errorf("Bytes = %d, want %d", r.Bytes(), wantBytes)
			}
			if !slices.Equal(dropped, tc.dropped) {
				t.Errorf("dropped %q, want %q", dropped, tc.dropped)
			}
			if got := takeAll(t, r); !slices.Equal(got, tc.queued) {
				t.Errorf("queued %q, want %q", got, tc.queued)
			}
			if r.Bytes() != 0 {
				t.Errorf("Bytes = %d after every item was taken, want 0", r.Bytes())
			}
		})
	}
}

func TestBlockBytesPutWaitsUntilTheItemFitsAndAnOversizedOneForAnEmptyRing(t *testing.T) {
	r := mustNewSized(t, 10, Block, nil)
	ctx := context.Background()
	_ = r.Put(ctx, "aaaa")
	_ = r.Put(ctx, "bbbb")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := r.Put(short, "ccc"); !errors.Is(err, context.DeadlineExceeded) || r.Len() != 2 || r.Bytes() != 8 {
		t.Fatalf("Put of 3 bytes into 8 of 10 = %v with %d items of %d bytes, want a wait cut by the context", err, r.Len(), r.Bytes())
	}

	done := make(chan error)
	go func() { done <- r.Put(ctx, "ccc") }()
	take := func() string {
		v, err := r.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := take(); got != "aaaa" {
		t.Fatalf("took %q first, want aaaa", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Put = %v after room was made", err)
	}
	// An item over the whole bound waits for an empty ring, then goes alone.
	go func() { done <- r.Put(ctx, "x123456789abc") }()
	got := []string{take(), take()}
	if err := <-done; err != nil {
		t.Fatalf("Put of an oversized item = %v", err)
	}
	if r.Len() != 1 || r.Bytes() != 13 {
		t.Errorf("after the oversized Put: %d items of %d bytes, want it alone (13)", r.Len(), r.Bytes())
	}
	got = append(got, take())
	if want := []string{"bbbb", "ccc", "x123456789abc"}; !slices.Equal(got, want) {
		t.Errorf("took %q, want %q", got, want)
	}
	if r.Bytes() != 0 {
		t.Errorf("Bytes = %d after everything was taken, want 0", r.Bytes())
	}
}

func TestBytesPutAndTakeWithNobodyWaitingAllocateNothing(t *testing.T) {
	for _, p := range []Policy{DropOldest, Block} {
		r := mustNewSized(t, 1<<20, p, nil)
		ctx := context.Background()
		allocs := testing.AllocsPerRun(1000, func() {
			if err := r.Put(ctx, "event"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Take(ctx); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("policy %v: %.1f allocations a Put and Take, want 0", p, allocs)
		}
	}
}
