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
//
// A ring made by NewSized is bounded in bytes too: the queued items' sizes
// sum to at most its byte capacity, except that an item larger than that
// is queued alone (in an otherwise empty ring), so that it is never refused
// for good.
type Ring[T any] struct {
	ch     chan T
	policy Policy
	onDrop func(T)

	// The byte bound, when maxBytes > 0: size weighs an item (the same
	// every time for one item); bytes is what the queued items weigh;
	// room is closed, and replaced, when bytes shrink after a Put was
	// given it to wait on (roomWaited): a Take with nobody waiting costs
	// no channel.
	maxBytes   int64
	size       func(T) int64
	bmu        sync.Mutex
	bytes      int64
	room       chan struct{}
	roomWaited bool

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
	return NewSized(capacity, 0, nil, p, onDrop)
}

// NewSized is New with a byte capacity too: the sizes (by size) of the
// queued items sum to at most maxBytes, and policy p applies when a new
// item would pass either bound: Block waits for room, DropOldest evicts
// the oldest items until the new one fits. An item larger than maxBytes
// waits for (or makes) an empty ring and is then queued alone. maxBytes 0
// is no byte bound.
func NewSized[T any](capacity int, maxBytes int64, size func(T) int64, p Policy, onDrop func(T)) (*Ring[T], error) {
	if capacity < 1 {
		return nil, fmt.Errorf("buffer capacity %d: want at least 1", capacity)
	}
	if p != DropOldest && p != Block {
		return nil, fmt.Errorf("buffer overflow policy %d: want DropOldest or Block", int(p))
	}
	if maxBytes < 0 || maxBytes > 0 && size == nil {
		return nil, fmt.Errorf("buffer byte capacity %d: want 0 (none), or > 0 with a size function", maxBytes)
	}
	return &Ring[T]{
		ch:       make(chan T, capacity),
		policy:   p,
		onDrop:   onDrop,
		maxBytes: maxBytes,
		size:     size,
		room:     make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// weigh returns what v weighs against the byte bound (0 without one).
func (r *Ring[T]) weigh(v T) int64 {
	if r.maxBytes <= 0 {
		return 0
	}
	return max(r.size(v), 0)
}

// reserve adds w to the queued bytes when it fits (or the ring holds no
// bytes), and otherwise returns a channel closed when bytes are released.
func (r *Ring[T]) reserve(w int64) (bool, <-chan struct{}) {
	if r.maxBytes <= 0 {
		return true, nil
	}
	r.bmu.Lock()
	defer r.bmu.Unlock()
	if r.bytes == 0 || r.bytes+w <= r.maxBytes {
		r.bytes += w
		return true, nil
	}
	r.roomWaited = true
	return false, r.room
}

// release takes w off the queued bytes and wakes the Puts waiting for room.
func (r *Ring[T]) release(w int64) {
	if r.maxBytes <= 0 || w == 0 {
		return
	}
	r.bmu.Lock()
	r.bytes -= w
	if r.roomWaited {
		close(r.room)
		r.room, r.roomWaited = make(chan struct{}), false
	}
	r.bmu.Unlock()
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
	w := r.weigh(v)
	if r.policy == Block {
		defer r.mu.RUnlock()
		for {
			ok, room := r.reserve(w)
			if ok {
				break
			}
			select {
			case <-room:
			case <-ctx.Done():
				return ctx.Err()
			case <-r.done:
				return ErrClosed
			}
		}
		select {
		case r.ch <- v:
			return nil
		default:
		}
		select {
		case r.ch <- v:
			return nil
		case <-ctx.Done():
			r.release(w)
			return ctx.Err()
		case <-r.done:
			r.release(w)
			return ErrClosed
		}
	}
	var evicted []T
	r.evict.Lock()
	// Only the consumer can change the queue while we hold evict, and only
	// by taking items out: once there is room it stays.
	for {
		if ok, _ := r.reserve(w); ok {
			break
		}
		select {
		case old := <-r.ch:
			r.release(r.weigh(old))
			evicted = append(evicted, old)
			continue
		default:
		}
		// Nothing queued: the bytes are an item being taken, released in
		// a moment. Queue v over the bound rather than wait for it.
		r.bmu.Lock()
		r.bytes += w
		r.bmu.Unlock()
		break
	}
	select {
	case r.ch <- v:
	default:
		// Full: after this select there is room, so the send below never
		// blocks.
		select {
		case old := <-r.ch:
			r.release(r.weigh(old))
			evicted = append(evicted, old)
		default:
		}
		r.ch <- v
	}
	r.evict.Unlock()
	r.mu.RUnlock()
	if r.onDrop != nil {
		for _, old := range evicted {
			r.onDrop(old)
		}
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
		r.release(r.weigh(v))
		return v, nil
	default:
	}
	select {
	case v, ok := <-r.ch:
		if !ok {
			return v, ErrClosed
		}
		r.release(r.weigh(v))
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Len returns the number of queued items (taken items are not counted).
func (r *Ring[T]) Len() int { return len(r.ch) }

// Bytes returns what the queued items weigh (0 without a byte bound).
func (r *Ring[T]) Bytes() int64 {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	return r.bytes
}

// MaxBytes returns the ring's byte capacity; 0 is none.
func (r *Ring[T]) MaxBytes() int64 { return r.maxBytes }

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
