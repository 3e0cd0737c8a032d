package buffer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
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
