package httpsender

import (
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
// response body is closed.
type pool struct {
	next  http.RoundTripper
	slots chan struct{}
	wait  time.Duration
}

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
	resp, err := p.next.RoundTrip(req)
	if err != nil {
		<-p.slots
		return nil, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, release: func() { <-p.slots }}
	return resp, nil
}

// slotBody gives the pool slot back when the body is closed.
type slotBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
