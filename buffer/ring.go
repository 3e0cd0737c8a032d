// Package buffer holds Ring, the bounded queue between the pipeline that
// encodes events and the sender that delivers them, with the two overflow
// policies of kc-event-emitter: drop the oldest queued item (the original
// emitter's behaviour) or block the producer (back-pressure, nothing lost).
package buffer

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Policy says what Put does when the ring is full.
type Policy int

const (
	// DropOldest evicts the oldest queued item to make room for the new
	// one, and hands the evicted item to the ring's onDrop function. It is
	// the original emitter's policy and the zero value.
	DropOldest Policy = iota
	// Block makes Put wait until the consumer has taken an item (or the
	// context ends): back-pressure to the producer, nothing is lost.
	Block
)

// String returns the policy's name as ParsePolicy accepts it.
func (p Policy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case Block:
		return "block"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy returns the Policy named s: "drop-oldest" or "block".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "drop-oldest":
		return DropOldest, nil
	case "block":
		return Block, nil
	}
	return 0, fmt.Errorf("overflow policy %q: want drop-oldest or block", s)
}

// MarshalText returns the policy's name, for flags and configuration files.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText sets p to the policy named by text (see ParsePolicy).
func (p *Policy) UnmarshalText(text []byte) error {
	v, err := ParsePolicy(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ErrClosed is returned by Put once the ring is closed, and by Take once it
// is closed and every queued item has been taken.
var ErrClosed = errors.New("buffer closed")

// Ring is a bounded FIFO queue for any number of concurrent producers and
// one consumer.
//
// The consumer takes items out with Take, one at a time, in the order they
// were put. A taken item belongs to the consumer: it no longer counts
// against the capacity, Len does not count it, and DropOldest can never
// evict it. A consumer that fails to deliver a taken item keeps it and
// tries again; nothing is ever put back at the tail, so order is kept.
// The memory held is thus bounded by the capacity plus the items the
// consumer holds.
type Ring[T any] struct {
	ch     chan T
	policy Policy
	onDrop func(T)

	// mu is read-held by every Put while it may send on ch and
	// write-held by Close to close ch, so that no Put sends on a closed
	// channel.
	mu sync.RWMutex
	// evict serialises DropOldest puts: each evicts at most one item, and
	// only when the ring is still full, so concurrent producers never
	// drop more than they must.
	evict  sync.Mutex
	done   chan struct{}
	closed sync.Once
}

// New returns an empty ring that queues up to capacity items and applies
// policy p when it is full. onDrop, which may be nil, is called with every
// item that DropOldest evicts, outside the ring's locks, on the goroutine
// of the Put that evicted it.
func New[T any](capacity int, p Policy, onDrop func(T)) (*Ring[T], error) {
	if capacity < 1 {
		return nil, fmt.Errorf("buffer capacity %d: want at least 1", capacity)
	}
	if p != DropOldest && p != Block {
		return nil, fmt.Errorf("buffer overflow policy %d: want DropOldest or Block", int(p))
	}
	return &Ring[T]{
		ch:     make(chan T, capacity),
		policy: p,
		onDrop: onDrop,
		done:   make(chan struct{}),
	}, nil
}

// Put appends v at the tail. When the ring is full, Block waits for room
// (returning ctx.Err() if ctx ends first) and DropOldest evicts the oldest
// queued item, passes it to onDrop and appends v. Put returns ErrClosed,
// without queueing v, once Close has been called.
func (r *Ring[T]) Put(ctx context.Context, v T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.RLock()
	select {
	case <-r.done:
		r.mu.RUnlock()
		return ErrClosed
	default:
	}
	if r.policy == Block {
		defer r.mu.RUnlock()
		select {
		case r.ch <- v:
			return nil
		default:
		}
		select {
		case r.ch <- v:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return ErrClosed
		}
	}
	var (
		old     T
		evicted bool
	)
	r.evict.Lock()
	select {
	case r.ch <- v:
	default:
		// Full. Only the consumer can change the queue while we hold
		// evict, and only by taking an item out: after this select there
		// is room, so the send below never blocks.
		select {
		case old = <-r.ch:
			evicted = true
		default:
		}
		r.ch <- v
	}
	r.evict.Unlock()
	r.mu.RUnlock()
	if evicted && r.onDrop != nil {
		r.onDrop(old)
	}
	return nil
}

// Take removes the item at the head and returns it, waiting for one if the
// ring is empty. It returns ctx.Err() if ctx ends first, and ErrClosed
// once the ring is closed and empty. Only one goroutine may call Take.
func (r *Ring[T]) Take(ctx context.Context) (T, error) {
	select {
	case v, ok := <-r.ch:
		if !ok {
			return v, ErrClosed
		}
		return v, nil
	default:
	}
	select {
	case v, ok := <-r.ch:
		if !ok {
			return v, ErrClosed
		}
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Len returns the number of queued items (taken items are not counted).
func (r *Ring[T]) Len() int { return len(r.ch) }

// Cap returns the ring's capacity.
func (r *Ring[T]) Cap() int { return cap(r.ch) }

// Close makes every later Put, and every Put waiting for room, return
// ErrClosed. The items already queued stay: Take returns them, then
// ErrClosed. Close may be called more than once.
func (r *Ring[T]) Close() {
	r.closed.Do(func() {
		close(r.done)
		r.mu.Lock()
		close(r.ch)
		r.mu.Unlock()
	})
}
