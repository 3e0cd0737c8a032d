package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The peer case compares, on one Keycloak (the one of scripts/peer.sh, which
// has io.phasetwo.keycloak:keycloak-events in its providers), the
// direct-grant logins/s with events only stored, with the in-process
// webhook listener ext-event-webhook on, and with our emitter tailing the
// database; then the events each forwarder loses while the receiver is
// down. Both forwarders deliver to the same counting receiver (sink).

// The set-ups of the peer case; the last two are the forwarders.
const (
	setupStored   = "stored only"
	setupPhaseTwo = "Phase Two listener"
	setupSidecar  = "kc-event-emitter sidecar"
)

// keycloak is what `scripts/peer.sh env` exports.
type keycloak struct {
	url, admin, password, dbURL string
}

func keycloakFromEnv() (keycloak, error) {
	k := keycloak{url: os.Getenv("KCEE_TEST_KEYCLOAK_URL"), admin: os.Getenv("KCEE_TEST_KEYCLOAK_ADMIN"),
		password: os.Getenv("KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD"), dbURL: os.Getenv("KCEE_TEST_KEYCLOAK_DB_URL")}
	if k.url == "" || k.admin == "" || k.password == "" || k.dbURL == "" {
		return k, errors.New("the peer case needs KCEE_TEST_KEYCLOAK_URL, _ADMIN, _ADMIN_PASSWORD and _DB_URL: run it as `scripts/peer.sh measure`")
	}
	u, err := url.Parse(k.url)
	if err != nil {
		return k, fmt.Errorf("KCEE_TEST_KEYCLOAK_URL %q: %w", k.url, err)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return k, fmt.Errorf("KCEE_TEST_KEYCLOAK_URL %q is not a loopback address", k.url)
	}
	return k, nil
}

// call makes an admin REST call with a fresh token (master's tokens live a
// minute) and decodes a JSON answer into out when out is not nil.
func (k keycloak) call(ctx context.Context, method, path string, body, out any) error {
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {k.admin}, "password": {k.password}}
	resp, err := http.PostForm(k.url+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.AccessToken == "" {
		return fmt.Errorf("admin token from %s: HTTP %d", k.url, resp.StatusCode)
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.url+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// sink is the receiver of the peer case: it answers 200 to any POST and
// keeps the distinct event ids it saw ("id" of our JSON format, "uid" of
// Phase Two's payload) with their event time. It can be stopped and
// started again on the same address.
type sink struct {
	addr   string
	mu     sync.Mutex
	seen   map[string]int64 // id -> event time (ms)
	sample map[string][]byte
	srv    *http.Server
}

func newSink() (*sink, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &sink{addr: addr, seen: map[string]int64{}, sample: map[string][]byte{}}
	return s, s.start()
}

func (s *sink) url(path string) string { return "http://" + s.addr + path }

func (s *sink) start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("sink: listen on %s again: %w", s.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

// stop closes the listener and every connection: the target is down.
func (s *sink) stop() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Close()
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST a body", http.StatusBadRequest)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err == nil {
		id, _ := m["uid"].(string) // Phase Two
		who := "phasetwo"
		if id == "" {
			id, _ = m["id"].(string) // ours (JSON format)
			who = "kc-event-emitter"
		}
		t, _ := m["time"].(float64)
		if id != "" {
			s.mu.Lock()
			if _, ok := s.seen[id]; !ok {
				s.seen[id] = int64(t)
			}
			if s.sample[who] == nil {
				s.sample[who] = body
			}
			s.mu.Unlock()
		}
	}
	w.WriteHeader(http.StatusOK)
}

// count returns the distinct ids seen with an event time in [from, to].
func (s *sink) count(from, to int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.seen {
		if t >= from && t <= to {
			n++
		}
	}
	return n
}

// peerResult is one set-up's login rate and what reached the receiver.
type peerResult struct {
	setup     string
	logins    int64
	failures  int64
	elapsed   time.Duration
	stored    int // events Keycloak stored in the window
	delivered int // distinct events the sink got from the window
	load      float64
}

func (p peerResult) rate() float64 { return perSecond(p.logins, p.elapsed) }

// outageResult is one forwarder's losses while the receiver was down.
type outageResult struct {
	forwarder  string
	down       time.Duration
	stored     int
	delivered  int
	catchUp    time.Duration // from the receiver's return to the last event delivered
	settledFor time.Duration
}

// peerFixture is the realm of one peer run.
type peerFixture struct {
	kc       keycloak
	realm    string
	realmID  string
	client   string
	users    []string
	password string
	db       *sql.DB
}

func (b *bench) peer(ctx context.Context) error {
	kc, err := keycloakFromEnv()
	if err != nil {
		return err
	}
	sk, err := newSink()
	if err != nil {
		return err
	}
	defer sk.stop()
	f, err := newPeerFixture(ctx, kc)
	if err != nil {
		return err
	}
	defer f.close(context.WithoutCancel(ctx))
	// The webhook of Phase Two's listener: every event type, to the sink.
	if err := kc.call(ctx, "POST", "/realms/"+f.realm+"/webhooks", map[string]any{
		"enabled": true, "url": sk.url("/phasetwo"), "eventTypes": []string{"*"}, "secret": "kc-event-bench",
	}, nil); err != nil {
		return fmt.Errorf("create the Phase Two webhook: %w", err)
	}
	// The JVM compiles the login path during the first minutes: warm it up
	// first, then run the set-ups twice, interleaved, so that drift shows.
	b.progress("peer: warming Keycloak up with %s of logins", 2*b.cfg.peerDuration)
	warm, cancel := context.WithTimeout(ctx, 2*b.cfg.peerDuration)
	f.logins(warm, b.cfg.peerClients, 0)
	cancel()
	d := b.cfg.peerDuration
	setups := []string{setupStored, setupPhaseTwo, setupSidecar}
	for _, setup := range append(setups, setups...) {
		r, err := b.peerThroughput(ctx, f, sk, setup, d)
		if err != nil {
			return err
		}
		b.rep.peer = append(b.rep.peer, r)
		b.done("peer %s: %.1f logins/s, %d of %d events delivered, load %.1f", setup, r.rate(), r.delivered, r.stored, r.load)
	}
	for _, fw := range []string{setupPhaseTwo, setupSidecar} {
		r, err := b.peerOutage(ctx, f, sk, fw)
		if err != nil {
			return err
		}
		b.rep.outage = append(b.rep.outage, r)
		b.done("peer outage %s: %d of %d events delivered", fw, r.delivered, r.stored)
	}
	for who, body := range sk.sample {
		b.rep.peerSamples = append(b.rep.peerSamples, who+": "+string(body))
	}
	return nil
}

func newPeerFixture(ctx context.Context, kc keycloak) (*peerFixture, error) {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	f := &peerFixture{kc: kc, realm: "kcee-peer-" + hex.EncodeToString(suffix), client: "bench-cli", password: "bench-pw-1"}
	// Cheap password hashing: the logins then measure the event path, not
	// PBKDF2 (210,000 rounds by default, about 100 ms of CPU per login).
	if err := kc.call(ctx, "POST", "/admin/realms", map[string]any{
		"realm": f.realm, "enabled": true, "eventsEnabled": true, "eventsListeners": []string{"jboss-logging"},
		"passwordPolicy": "hashIterations(1)", "bruteForceProtected": false,
	}, nil); err != nil {
		return nil, fmt.Errorf("create realm %s: %w", f.realm, err)
	}
	if err := kc.call(ctx, "POST", "/admin/realms/"+f.realm+"/clients", map[string]any{
		"clientId": f.client, "publicClient": true, "directAccessGrantsEnabled": true, "standardFlowEnabled": false,
	}, nil); err != nil {
		f.close(ctx)
		return nil, err
	}
	for i := range 10 {
		name := fmt.Sprintf("user-%02d", i)
		if err := kc.call(ctx, "POST", "/admin/realms/"+f.realm+"/users", map[string]any{
			"username": name, "enabled": true, "email": name + "@example.test", "emailVerified": true,
			"firstName": "Bench", "lastName": name,
			"credentials": []map[string]any{{"type": "password", "value": f.password, "temporary": false}},
		}, nil); err != nil {
			f.close(ctx)
			return nil, err
		}
		f.users = append(f.users, name)
	}
	var err error
	if f.db, err = sql.Open("postgres", kc.dbURL); err != nil {
		f.close(ctx)
		return nil, err
	}
	if err := f.db.QueryRowContext(ctx, "SELECT id FROM realm WHERE name = $1", f.realm).Scan(&f.realmID); err != nil {
		f.close(ctx)
		return nil, fmt.Errorf("realm %s in Keycloak's database: %w", f.realm, err)
	}
	return f, nil
}

func (f *peerFixture) close(ctx context.Context) {
	if f.db != nil {
		f.db.Close()
	}
	f.kc.call(ctx, "DELETE", "/admin/realms/"+f.realm, nil, nil)
}

// listeners sets the realm's event listeners (events stay stored).
func (f *peerFixture) listeners(ctx context.Context, names ...string) error {
	return f.kc.call(ctx, "PUT", "/admin/realms/"+f.realm, map[string]any{"eventsListeners": names, "eventsEnabled": true}, nil)
}

// stored counts the events Keycloak stored in the realm in [from, to].
func (f *peerFixture) stored(ctx context.Context, from, to int64) (int, error) {
	var n int
	err := f.db.QueryRowContext(ctx, "SELECT count(*) FROM event_entity WHERE realm_id = $1 AND event_time BETWEEN $2 AND $3",
		f.realmID, from, to).Scan(&n)
	return n, err
}

// logins runs direct-grant logins from clients goroutines until ctx is done,
// or at rate logins/s in all when rate > 0.
func (f *peerFixture) logins(ctx context.Context, clients int, rate float64) (ok, failed int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	token := f.kc.url + "/realms/" + f.realm + "/protocol/openid-connect/token"
	var t tally
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1)
				if rate > 0 {
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(due)):
					}
				}
				form := url.Values{"grant_type": {"password"}, "client_id": {f.client},
					"username": {f.users[int(i)%len(f.users)]}, "password": {f.password}}
				req, _ := http.NewRequestWithContext(ctx, "POST", token, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				t.do(ctx, c, req)
			}
		})
	}
	wg.Wait()
	return t.ok.Load(), t.failed.Load()
}

// sidecar starts our emitter tailing the peer's database into the sink.
func (b *bench) sidecar(f *peerFixture, sk *sink) (*emitterProc, error) {
	dir, err := b.runDir()
	if err != nil {
		return nil, err
	}
	p, err := emitterRun{bin: b.bin, dbURL: f.kc.dbURL, target: sk.url("/emitter"), format: "JSON", overflow: "block",
		buffer: b.cfg.buffer, concurrency: 1, from: "now", dir: dir, realms: f.realm}.start()
	if err != nil {
		return nil, err
	}
	if err := waitReady(context.Background(), p); err != nil {
		p.stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

// forwardWith sets the realm's event listeners for a set-up and starts our
// sidecar when the set-up is it; stop ends what it started.
func (b *bench) forwardWith(ctx context.Context, f *peerFixture, sk *sink, setup string) (stop func(), err error) {
	names := []string{"jboss-logging"}
	if setup == setupPhaseTwo {
		names = append(names, "ext-event-webhook")
	}
	if err := f.listeners(ctx, names...); err != nil {
		return nil, err
	}
	if setup != setupSidecar {
		return func() {}, nil
	}
	p, err := b.sidecar(f, sk)
	if err != nil {
		return nil, err
	}
	return func() { p.stop(30 * time.Second) }, nil
}

func (b *bench) peerThroughput(ctx context.Context, f *peerFixture, sk *sink, setup string, d time.Duration) (peerResult, error) {
	r := peerResult{setup: setup}
	stop, err := b.forwardWith(ctx, f, sk, setup)
	if err != nil {
		return r, err
	}
	defer stop()
	b.progress("peer %s: warming up for 5s, then logins for %s", setup, d)
	warm, cancel := context.WithTimeout(ctx, 5*time.Second)
	f.logins(warm, b.cfg.peerClients, 0)
	cancel()
	from := time.Now().UnixMilli()
	run, cancel := context.WithTimeout(ctx, d)
	start := time.Now()
	r.logins, r.failures = f.logins(run, b.cfg.peerClients, 0)
	r.elapsed = time.Since(start)
	cancel()
	to := time.Now().UnixMilli()
	r.load = b.host.loadAverage()
	if r.stored, err = f.stored(ctx, from, to); err != nil {
		return r, err
	}
	if setup != setupStored { // wait for the forwarder to deliver the window
		deadline := time.Now().Add(2 * time.Minute)
		for sk.count(from, to) < r.stored && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
		}
		r.delivered = sk.count(from, to)
	}
	return r, nil
}

// peerOutage logs in at 20/s for 90 s, with the sink down from 10 s to
// 70 s, then waits for the forwarder to catch up.
func (b *bench) peerOutage(ctx context.Context, f *peerFixture, sk *sink, forwarder string) (outageResult, error) {
	const rate, total, downAt, downFor = 20, 90 * time.Second, 10 * time.Second, 60 * time.Second
	r := outageResult{forwarder: forwarder, down: downFor}
	stop, err := b.forwardWith(ctx, f, sk, forwarder)
	if err != nil {
		return r, err
	}
	defer stop()
	from := time.Now().UnixMilli()
	run, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	done := make(chan struct{})
	go func() { f.logins(run, 4, rate); close(done) }()
	b.progress("peer outage %s: logins at %d/s; receiver down from %s to %s", forwarder, rate, downAt, downAt+downFor)
	time.Sleep(downAt)
	sk.stop()
	time.Sleep(downFor)
	if err := sk.start(); err != nil {
		return r, err
	}
	back := time.Now()
	<-done
	to := time.Now().UnixMilli()
	if r.stored, err = f.stored(ctx, from, to); err != nil {
		return r, err
	}
	// Wait until everything arrived or nothing new came for 2 minutes.
	last, lastChange := -1, time.Now()
	for {
		n := sk.count(from, to)
		if n != last {
			last, lastChange = n, time.Now()
			r.catchUp = time.Since(back)
		}
		if n >= r.stored || time.Since(lastChange) > 2*time.Minute {
			break
		}
		time.Sleep(time.Second)
	}
	r.delivered = last
	r.settledFor = time.Since(lastChange)
	return r, nil
}
