package httpsender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// pool is a RoundTripper that lets at most cap(slots) requests use the
// transport at once, one per connection the transport may open, so that a
// request finding every connection busy waits for one at most wait (the
// original's connectionRequestTimeoutMillis) and then fails with
// ErrRequestTimeout. A slot is held from the start of the request until its
// response body is closed. When attempt is not 0, it bounds the time from
// getting the slot to closing the body: the attempt then fails with
// ErrAttemptTimeout.
type pool struct {
	next    http.RoundTripper
	slots   chan struct{}
	wait    time.Duration
	attempt time.Duration
}

// errAttemptDeadline is the cause of the context an attempt's deadline ends.
var errAttemptDeadline = errors.New("attempt deadline")

func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.wait)
		select {
		case p.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, &timeoutError{kind: ErrRequestTimeout, limit: p.wait,
				err: fmt.Errorf("all %d connections stayed busy", cap(p.slots))}
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	parent, cancel := req.Context(), context.CancelFunc(func() {})
	if p.attempt > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeoutCause(parent, p.attempt, errAttemptDeadline)
		req = req.WithContext(ctx)
	}
	resp, err := p.next.RoundTrip(req)
	if err != nil {
		err = p.attemptError(req.Context(), parent, err)
		cancel()
		<-p.slots
		return nil, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, release: func() { cancel(); <-p.slots },
		wrap: func(err error) error { return p.attemptError(req.Context(), parent, err) }}
	return resp, nil
}

// attemptError marks err with ErrAttemptTimeout when the attempt's own
// deadline, not the caller's context, ended it.
func (p *pool) attemptError(ctx, parent context.Context, err error) error {
	if p.attempt > 0 && parent.Err() == nil && errors.Is(context.Cause(ctx), errAttemptDeadline) {
		return &timeoutError{kind: ErrAttemptTimeout, limit: p.attempt, err: err}
	}
	return err
}

// slotBody gives the pool slot back when the body is closed.
type slotBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
	wrap    func(error) error // marks a read ended by the attempt's deadline
}

func (b *slotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.wrap(err)
	}
	return n, err
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
