package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// arrival is one request the cluster's receiver took: which member sent it
// (the path), the event and when it arrived.
type arrival struct {
	member string // "<member>.<incarnation>"
	uid    int64
	id     string
	at     time.Time
}

// clusterReceiver is the test's target: it answers 200 to every event and
// records which member (and incarnation) sent it, at /m<member>.<incarnation>.
type clusterReceiver struct {
	addr string
	mu   sync.Mutex
	got  []arrival
}

func startClusterReceiver(t testing.TB) *clusterReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &clusterReceiver{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := strings.TrimPrefix(req.URL.Path, "/m")
		body, rerr := io.ReadAll(req.Body)
		if rerr != nil {
			http.Error(w, "bad path or body", 400)
			return
		}
		rec, _, err := emitter.DecodePayload(body, emitter.Numbering201)
		if err != nil {
			t.Errorf("member %s sent an undecodable payload: %v", m, err)
			http.Error(w, err.Error(), 400)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, arrival{member: m, uid: rec.UID(), id: string(rec.Kind()) + "/" + rec.ID(), at: time.Now()})
		r.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *clusterReceiver) arrivals() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// firstFrom returns the first arrival after t from a member other than not.
func (r *clusterReceiver) firstFrom(after time.Time, not string) (arrival, bool) {
	for _, a := range r.arrivals() {
		if a.at.After(after) && a.member != not {
			return a, true
		}
	}
	return arrival{}, false
}

// lastOf returns the last arrival from member at or before t.
func (r *clusterReceiver) lastOf(member string, before time.Time) (arrival, bool) {
	var last arrival
	found := false
	for _, a := range r.arrivals() {
		if a.member == member && !a.at.After(before) {
			last, found = a, true
		}
	}
	return last, found
}

// member is one emitter of the cluster, as a pod would run it: its own
// proxy in front of the database (to cut its network), its own ops port,
// restarted after each kill with the same arguments.
type member struct {
	i       int
	n       int // incarnation: restarts so far
	proxy   *testenv.Proxy
	listen  string
	target  string // the receiver's address
	args    []string
	env     string
	p       *proc
	t       *testing.T
	cluster string
}

// name is the member's current incarnation as the receiver records it.
func (m *member) name() string { return fmt.Sprintf("%d.%d", m.i, m.n) }

func (m *member) start() {
	args := with(m.args, "--targetUri", fmt.Sprintf("http://%s/m%s", m.target, m.name()))
	m.p = start(m.t, "kc-event-emitter", args, m.env)
}

func (m *member) role() string {
	c := http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get("http://" + m.listen + "/readyz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// restart kills the member with SIGKILL and starts it again, as a pod.
func (m *member) restart() {
	m.p.kill()
	m.p.quiet = true
	m.n++
	m.start()
}

// leaderOf waits until exactly one member answers "leader" and returns it.
func leaderOf(t *testing.T, ms []*member, within time.Duration) *member {
	t.Helper()
	var leader *member
	waitFor(t, within, "one leader", func() bool {
		leader = nil
		n := 0
		for _, m := range ms {
			if m.role() == "leader" {
				leader, n = m, n+1
			}
		}
		return n == 1
	})
	return leader
}

// disruption is what the test did to the leader, and when.
type disruption struct {
	kind   string // kill, cut, stop
	member string // the incarnation disrupted
	at     time.Time
}

// TestClusterOfThreeEmitsEveryEventOnceThroughKillsCutsAndFreezesOfTheLeader
// runs three emitters of one cluster on the real Keycloak's database while
// the seed makes real traffic. The leader is killed with SIGKILL again and
// again at random points (and restarted, like a pod), then its database
// connection is cut by a proxy that stops passing bytes, then it is frozen
// with SIGSTOP and later resumed. At the receiver: every event of the realm
// arrives, every redelivery carries the uid the event had, two events never
// share a uid, a killed or cut leader sends nothing once the next one sent,
// a resumed one at most the request it was writing when frozen; sampled
// /readyz never shows two leaders. KCEE_CLUSTER_KILLS sets the number of
// kills (default 2 here, 3 in the fast stream; e.g. 25 for a long run).
func TestClusterOfThreeEmitsEveryEventOnceThroughKillsCutsAndFreezesOfTheLeader(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realm := realmName("e2e-cluster")
	testenv.SeedKeycloak(t, realm, 0)
	traffic := func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := seedTraffic(t, kc, realm, 1)
			select { // (not p.wait: this goroutine must not stop the test)
			case <-p.done:
			case <-time.After(5 * time.Minute):
				p.kill()
			}
		}
	}
	want := func() []string {
		var ids []string
		for _, w := range keycloakRows(t, kc.DBURL, realm) {
			ids = append(ids, string(w.Kind)+"/"+w.ID)
		}
		return ids
	}
	clusterScenario(t, kc.DBURL, realm, traffic, want, clusterKills(2))
}

// TestClusterOfThreeEmitsEveryEventOnceUnderAFastStream is the same
// scenario with events written straight into Keycloak's event table (its
// real schema), 50 every 50 ms in bursts sharing milliseconds: many events
// are in flight at each kill.
func TestClusterOfThreeEmitsEveryEventOnceUnderAFastStream(t *testing.T) {
	if testing.Short() {
		t.Skip("streams events through three emitter binaries")
	}
	db, dbURL := newKeycloakDB(t, "r-acme")
	var mu sync.Mutex
	var ids []string
	traffic := func(stop <-chan struct{}) {
		for n := 0; ; {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var values []string
			var args []any
			now := time.Now().UnixMilli()
			var batch []string
			for j := range 50 {
				id := fmt.Sprintf("ev-%07d", n)
				n++
				values = append(values, fmt.Sprintf("($%d, 'r-acme', $%d, 'LOGIN', 'u1', 'c1', '{}')", 2*j+1, 2*j+2))
				args = append(args, id, now+int64(j/10))
				batch = append(batch, "Event/"+id)
			}
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, details_json) VALUES `+
				strings.Join(values, ","), args...); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, batch...)
			mu.Unlock()
		}
	}
	want := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
	clusterScenario(t, dbURL, "acme", traffic, want, clusterKills(3))
}

// clusterKills is KCEE_CLUSTER_KILLS, else def.
func clusterKills(def int) int {
	if n, err := strconv.Atoi(os.Getenv("KCEE_CLUSTER_KILLS")); err == nil && n > 0 {
		return n
	}
	return def
}

// clusterScenario runs three members on the database at dbURL tailing
// realm while traffic runs (until its channel closes); want returns the
// ids ("kind/id") of every event written. See the tests above.
func clusterScenario(t *testing.T, dbURL, realm string, traffic func(stop <-chan struct{}), want func() []string, kills int) {
	rcv := startClusterReceiver(t)
	cluster := fmt.Sprintf("e2e-%d", rand.Uint32())
	dir := t.TempDir()
	var ms []*member
	for i := 1; i <= 3; i++ {
		m := &member{i: i, proxy: testenv.StartProxy(t, testenv.TargetOf(t, dbURL)), listen: freeAddr(t), target: rcv.addr, t: t}
		m.args = emitterArgs("http://unset", filepath.Join(dir, fmt.Sprint("unused-", i)), m.listen,
			"--cluster", cluster, "--realms", realm, "--shutdownTimeout", "2s")
		m.args = with(with(m.args, "--keycloakId", fmt.Sprint(i)), "--deadLetterFile", filepath.Join(dir, fmt.Sprint("dead-", i)))
		m.env = "KC_EMITTER_DB_URL=" + m.proxy.ProxyURL(t, dbURL)
		m.start()
		ms = append(ms, m)
	}
	stopTraffic := make(chan struct{})
	var stopOnce sync.Once
	endTraffic := func() { stopOnce.Do(func() { close(stopTraffic) }) }
	t.Cleanup(endTraffic)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		traffic(stopTraffic)
	}()
	// Sample the roles: never two leaders at once.
	stopSampling := make(chan struct{})
	sampled := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sampled <- n }()
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var leaders []int
			for _, m := range ms {
				if m.role() == "leader" {
					leaders = append(leaders, m.i)
				}
			}
			if len(leaders) > 1 {
				t.Errorf("members %v all say leader", leaders)
			}
			n++
		}
	}()

	var ds []disruption
	var takeovers []string
	// waitTakeover waits for a delivery of a new leader after d and reports
	// the take-over time (last delivery of the old leader to first of the new).
	waitTakeover := func(d disruption) arrival {
		t.Helper()
		var first arrival
		waitFor(t, 90*time.Second, fmt.Sprintf("a delivery of a new leader after the %s of member %s", d.kind, d.member), func() bool {
			var ok bool
			first, ok = rcv.firstFrom(d.at, d.member)
			return ok
		})
		last, _ := rcv.lastOf(d.member, d.at)
		takeovers = append(takeovers, fmt.Sprintf("%s: old leader's last delivery to the new one's first %s (disruption to first %s)",
			d.kind, first.at.Sub(last.at).Round(10*time.Millisecond), first.at.Sub(d.at).Round(10*time.Millisecond)))
		return first
	}

	leader := leaderOf(t, ms, 2*time.Minute)
	waitFor(t, 2*time.Minute, "the first deliveries", func() bool { return len(rcv.arrivals()) > 0 })
	for range kills {
		time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
		d := disruption{"kill", leader.name(), time.Now()}
		leader.restart() // SIGKILL, then started again like a pod
		ds = append(ds, d)
		waitTakeover(d)
		leader = leaderOf(t, ms, time.Minute)
	}

	// Cut the leader's network: its lease lapses, it stops; the server ends
	// its silent lock session, another member takes over.
	time.Sleep(time.Duration(300+rand.IntN(1000)) * time.Millisecond)
	cut := disruption{"cut", leader.name(), time.Now()}
	leader.proxy.Cut()
	ds = append(ds, cut)
	waitTakeover(cut)
	time.Sleep(time.Second)
	cutOff := leader
	leader = leaderOf(t, ms, time.Minute)
	if leader == cutOff {
		t.Fatalf("member %s leads again behind a cut network", cutOff.name())
	}
	cutOff.proxy.Heal()
	// The cut-off leader stands by again, or, when a read of the source
	// was lost in the cut, exits within 10 s to be restarted like a pod.
	exited := false
	waitFor(t, 30*time.Second, "the cut-off leader to stand by or exit", func() bool {
		select {
		case <-cutOff.p.done:
			exited = true
			return true
		default:
			return strings.Contains(cutOff.p.output(), "lost the lead; standing by again")
		}
	})
	if exited {
		if !strings.Contains(cutOff.p.output(), "exiting so that the process is restarted") {
			t.Errorf("the cut-off leader exited without saying why")
		}
		cutOff.restart()
	}

	// Freeze the leader, let another take over, resume it.
	time.Sleep(time.Duration(300+rand.IntN(1000)) * time.Millisecond)
	stop := disruption{"stop", leader.name(), time.Now()}
	leader.p.cmd.Process.Signal(syscall.SIGSTOP)
	ds = append(ds, stop)
	waitTakeover(stop)
	frozen := leader
	leader = leaderOf(t, ms, time.Minute)
	resumed := time.Now()
	frozen.p.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)

	endTraffic()
	<-trafficDone
	close(stopSampling)
	nSamples := <-sampled
	wanted := want()
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d events at the receiver", len(wanted)), func() bool {
		seen := map[string]bool{}
		for _, a := range rcv.arrivals() {
			seen[a.id] = true
		}
		return len(seen) >= len(wanted)
	})
	time.Sleep(time.Second)
	got := rcv.arrivals()

	// Every event, each with one uid; no uid for two events.
	uidOf, idOf := map[string]int64{}, map[int64]string{}
	redelivered := 0
	for _, a := range got {
		if uid, ok := uidOf[a.id]; ok {
			redelivered++
			if uid != a.uid {
				t.Errorf("%s arrived with uid %d and again with uid %d", a.id, uid, a.uid)
			}
		}
		uidOf[a.id] = a.uid
		if id, ok := idOf[a.uid]; ok && id != a.id {
			t.Errorf("uid %d carried %s and %s", a.uid, id, a.id)
		}
		idOf[a.uid] = a.id
	}
	missing := 0
	for _, id := range wanted {
		if _, ok := uidOf[id]; !ok {
			if missing++; missing <= 10 {
				t.Errorf("%s never arrived", id)
			}
		}
	}
	if missing > 0 || len(uidOf) != len(wanted) {
		t.Errorf("%d of %d events never arrived; %d distinct arrived", missing, len(wanted), len(uidOf))
	}
	// After each disruption, once the new leader sent, the old one sends
	// nothing more (a resumed one: at most the request it was writing).
	for k, d := range ds {
		first, _ := rcv.firstFrom(d.at, d.member)
		end := time.Now()
		if k+1 < len(ds) {
			end = ds[k+1].at
		}
		var late []arrival
		for _, a := range got {
			if a.member == d.member && a.at.After(first.at) && a.at.Before(end) {
				late = append(late, a)
			}
		}
		allowed := 0
		if d.kind == "stop" {
			allowed = 1 // --concurrency 1: one request in flight when frozen
		}
		if len(late) > 0 {
			t.Logf("after the %s of member %s: %d of its deliveries arrived after the new leader's first", d.kind, d.member, len(late))
		}
		if len(late) > allowed {
			t.Errorf("after the %s of member %s the new leader sent at %s, and member %s then sent %d more (first at %s, %d allowed)",
				d.kind, d.member, first.at.Format("15:04:05.000"), d.member, len(late), late[0].at.Format("15:04:05.000"), allowed)
		}
	}
	// A member cut off earlier may have exited since, to be restarted like a
	// pod (a read of the source lost in the cut): restart it as a pod would.
	for _, m := range ms {
		select {
		case <-m.p.done:
			if !strings.Contains(m.p.output(), "exiting so that the process is restarted") {
				t.Errorf("member %s exited without saying why", m.name())
			}
			m.restart()
		default:
		}
	}
	// The gauge agrees: 1 on the leader, 0 on the standbys.
	for _, m := range ms {
		want := map[bool]float64{true: 1, false: 0}[m == leader]
		var n float64
		var ok bool
		waitFor(t, 30*time.Second, "member "+m.name()+"'s metrics", func() bool {
			n, ok = metric(m.listen, "kc_event_emitter_leader")
			return ok
		})
		if n != want {
			t.Errorf("member %s: kc_event_emitter_leader = %v (read %v), want %v", m.name(), n, ok, want)
		}
	}
	for _, m := range ms {
		if strings.Contains(m.p.output(), "panic:") {
			t.Errorf("member %d panicked", m.i)
		}
	}
	t.Logf("%d events, %d arrivals (%d redelivered with their uid), %d role samples; resumed member %s at %s",
		len(wanted), len(got), redelivered, nSamples, frozen.name(), resumed.Format("15:04:05.000"))
	for _, line := range takeovers {
		t.Log("take-over after a " + line)
	}
}
