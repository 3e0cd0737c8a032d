package natssink_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/natssink"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// setup starts a server with a stream KC on kc.> (maxMsgSize: its largest
// message; 0: no limit) and returns it with a JetStream client.
func setup(t *testing.T, maxPayload, maxMsgSize int32) (*testenv.NATS, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv := testenv.StartNATS(t, maxPayload)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KC", Subjects: []string{"kc.>"},
		Duplicates: time.Hour, MaxMsgSize: maxMsgSize})
	if err != nil {
		t.Fatal(err)
	}
	return srv, js, st
}

func newPublisher(t *testing.T, srv *testenv.NATS, subject string) *natssink.Publisher {
	t.Helper()
	p, err := natssink.New(natssink.Config{Servers: []string{srv.URL()}, Subject: subject, AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func messages(from, to int) []natssink.Message {
	var m []natssink.Message
	for i := from; i < to; i++ {
		m = append(m, natssink.Message{Realm: "acme", Kind: "event", ID: fmt.Sprint(i), Data: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: map[string]string{"uid": fmt.Sprint(i)}})
	}
	return m
}

func mustPublish(t *testing.T, p *natssink.Publisher, msgs []natssink.Message) {
	t.Helper()
	for i, err := range p.Publish(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func TestPublishStoresEachMessageOnceInOrderAndJetStreamDropsAReplayOfTheSameID(t *testing.T) {
	srv, _, st := setup(t, 0, 0)
	p := newPublisher(t, srv, "kc.{{realm}}.{{kind}}")
	mustPublish(t, p, messages(0, 100))
	mustPublish(t, p, messages(50, 150)) // 50..99 again: duplicates
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 150 {
		t.Fatalf("stream holds %d messages, want 150 (the replayed ids dropped)", info.State.Msgs)
	}
	for seq := uint64(1); seq <= 150; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "kc.acme.event" || m.Header.Get("uid") != fmt.Sprint(seq-1) || m.Header.Get(nats.MsgIdHdr) != fmt.Sprint(seq-1) {
			t.Fatalf("message %d: subject %s, uid %q, Nats-Msg-Id %q; want kc.acme.event and %d", seq, m.Subject, m.Header.Get("uid"), m.Header.Get(nats.MsgIdHdr), seq-1)
		}
	}
}

func TestAMessageNoStreamTakesIsRefusedForGood(t *testing.T) {
	srv, _, _ := setup(t, 0, 0)
	p := newPublisher(t, srv, "other.{{realm}}")
	errs := p.Publish(context.Background(), messages(0, 1))
	var pe interface{ Permanent() bool }
	if !errors.As(errs[0], &pe) || !pe.Permanent() {
		t.Fatalf("error %v, want a permanent refusal", errs[0])
	}
}

func TestAMessageOverTheSizeLimitIsRefusedForGoodAndTheOthersGo(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		maxPayload, maxMsgSize int32
	}{
		{"the server's max_payload", 64 << 10, 0},
		{"the stream's max message size", 0, 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, _ := setup(t, tc.maxPayload, tc.maxMsgSize)
			p := newPublisher(t, srv, "kc.{{realm}}")
			msgs := messages(0, 3)
			msgs[1].Data = make([]byte, 100<<10)
			errs := p.Publish(context.Background(), msgs)
			var pe interface{ Permanent() bool }
			if !errors.As(errs[1], &pe) || !pe.Permanent() {
				t.Errorf("the large message: %v, want a permanent refusal", errs[1])
			}
			if errs[0] != nil || errs[2] != nil {
				t.Errorf("the small messages: %v, %v; want both taken", errs[0], errs[2])
			}
		})
	}
}

func TestPublishAcrossAServerRestartLosesNothingWhenRetried(t *testing.T) {
	srv, _, st := setup(t, 0, 0)
	p := newPublisher(t, srv, "kc.{{realm}}")
	restarted := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		srv.Restart(time.Second)
		close(restarted)
	}()
	const per = 50
	failed, batches := 0, 0
	for done := false; !done || batches < 20; batches++ {
		pending := messages(batches*per, (batches+1)*per)
		for tries := 0; len(pending) > 0; tries++ {
			if tries > 50 {
				t.Fatalf("%d messages never taken", len(pending))
			}
			var again []natssink.Message
			for i, err := range p.Publish(context.Background(), pending) {
				var pe interface{ Permanent() bool }
				if errors.As(err, &pe) && pe.Permanent() {
					t.Fatalf("message %s refused for good during a restart: %v", pending[i].ID, err)
				}
				if err != nil {
					again = append(again, pending[i])
				}
			}
			failed += len(again)
			pending = again
			if len(pending) > 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		select {
		case <-restarted:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(batches * per); info.State.Msgs != want {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
	// Messages published while the server was down wait in the client's
	// reconnect buffer and are acknowledged after it reconnects; those whose
	// acknowledgement timed out were published again with the same id.
	t.Logf("%d batches, %d publishes failed during the restart and were retried", batches, failed)
}

// Failed tells a refusal without waiting for the batch, once the messages
// before it are answered; Wait then returns it for its message alone.
func TestSentTellsAFailureBeforeTheBatchIsWaitedFor(t *testing.T) {
	srv, _, _ := setup(t, 0, 16<<10)
	p := newPublisher(t, srv, "kc.{{realm}}")
	msgs := messages(0, 3)
	msgs[1].Data = make([]byte, 100<<10)
	sent := p.Start(context.Background(), msgs)
	deadline := time.Now().Add(10 * time.Second)
	for !sent.Failed() {
		if time.Now().After(deadline) {
			t.Fatal("Failed still false 10 s after a message over the stream's size limit")
		}
		time.Sleep(time.Millisecond)
	}
	errs := sent.Wait()
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors %v, want only the second message's", errs)
	}
}
