package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// receiverPath is where the emitter and the load generator POST.
const receiverPath = "/event/receiver"

// benchReceiver is the reference receiver's handler (emitter/receiver with
// emitter.DecodePayload, Basic auth) in this process, so that the arrival
// time of every event is taken on the same clock as its commit time. Its
// Handle stores the arrival time of each sequence number once.
type benchReceiver struct {
	srv      *http.Server
	addr     string
	password string

	run       atomic.Pointer[arrivals] // the current run; nil between runs
	requests  atomic.Int64             // 200 answers since start
	lastBody  atomic.Pointer[[]byte]   // a copy of a body the emitter sent, for the load generator
	keepBody  atomic.Bool              // copy the next LOGIN's body into lastBody
	decodeErr atomic.Int64
}

// arrivals records, per sequence number, when the receiver acknowledged it.
type arrivals struct {
	at         []atomic.Int64 // UnixNano; 0 = not arrived
	delivered  atomic.Int64   // distinct sequence numbers arrived
	duplicates atomic.Int64
	unknown    atomic.Int64 // events without a sequence number in range
	done       chan struct{}
	want       int64
}

func newArrivals(n int) *arrivals {
	return &arrivals{at: make([]atomic.Int64, n), done: make(chan struct{}), want: int64(n)}
}

// arrive records sequence number seq at now.
func (a *arrivals) arrive(seq int, now int64) {
	if seq < 0 || seq >= len(a.at) {
		a.unknown.Add(1)
		return
	}
	if !a.at[seq].CompareAndSwap(0, now) {
		a.duplicates.Add(1)
		return
	}
	if a.delivered.Add(1) == a.want {
		close(a.done)
	}
}

// startReceiver serves the handler on a free loopback port.
func startReceiver(password string, log *slog.Logger) (*benchReceiver, error) {
	r := &benchReceiver{password: password}
	h, err := receiver.NewHandler(receiver.Config[emitter.Record]{
		Decode: func(body []byte) (emitter.Record, error) {
			rec, _, err := emitter.DecodePayload(body, emitter.Numbering201)
			if err != nil {
				r.decodeErr.Add(1)
				return rec, err
			}
			if r.keepBody.Load() && rec.Event != nil && rec.Event.Type == "LOGIN" && r.keepBody.CompareAndSwap(true, false) {
				b := append([]byte(nil), body...)
				r.lastBody.Store(&b)
			}
			return rec, nil
		},
		Handle: func(_ context.Context, rec emitter.Record) error {
			now := time.Now().UnixNano()
			r.requests.Add(1)
			a := r.run.Load()
			if a == nil {
				return nil
			}
			seq, ok := recordSeq(rec)
			if !ok {
				a.unknown.Add(1)
				return nil
			}
			a.arrive(seq, now)
			return nil
		},
		Password: password,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(receiverPath, h)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	r.addr = ln.Addr().String()
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("receiver stopped", "error", err)
		}
	}()
	return r, nil
}

// url is the address the emitter delivers to.
func (r *benchReceiver) url() string { return "http://" + r.addr + receiverPath }

// expect starts recording a run of n events; the previous run is forgotten.
func (r *benchReceiver) expect(n int) *arrivals {
	a := newArrivals(n)
	r.lastBody.Store(nil)
	r.keepBody.Store(true)
	r.run.Store(a)
	return a
}

// sampleBody returns a body the emitter sent in the current run.
func (r *benchReceiver) sampleBody() ([]byte, error) {
	if b := r.lastBody.Load(); b != nil {
		return *b, nil
	}
	return nil, fmt.Errorf("no body arrived at %s yet", r.url())
}

func (r *benchReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
}

// recordSeq returns the sequence number the generator put into the event:
// the end of the session id of an Event, of the resource path of an
// AdminEvent.
func recordSeq(rec emitter.Record) (int, bool) {
	switch {
	case rec.Event != nil:
		return seqOf(rec.Event.SessionID)
	case rec.Admin != nil:
		return seqOf(rec.Admin.ResourcePath)
	}
	return 0, false
}
