package emitter

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyAfter is how long the target may take no event, with events
// waiting, before /readyz answers 503.
const readyAfter = 30 * time.Second

// listenOps listens on the ops address.
func listenOps(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &FieldError{Field: "listen", Value: addr, Err: err}
	}
	return ln, nil
}

// serveOps serves /healthz (alive), /readyz (see notReady) and /metrics on
// ln until the returned server is closed. The server bounds every
// connection: headers, whole requests, answers and idle keep-alives.
// When ready, /readyz answers readyText() ("ready" when nil).
func serveOps(ln net.Listener, reg *prometheus.Registry, notReady func(time.Time) string, readyText func() string) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if problem := notReady(time.Now()); problem != "" {
			http.Error(w, problem, http.StatusServiceUnavailable)
			return
		}
		if readyText == nil {
			fmt.Fprintln(w, "ready")
			return
		}
		fmt.Fprintln(w, readyText())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go srv.Serve(ln)
	return srv
}

// readiness says why the emitter is not ready, or "" when it is: for every
// route, the source answered the route's last read, the target does not
// refuse every event (the route is not held), and it took an event
// recently or nothing waits for it. With several routes each problem is
// named by its route ("route audit: ..."); one stalled route makes the
// emitter not ready.
//
// In cluster mode a standby is ready ("standby") while it can reach the
// state database, so that it can take over: a sidecar's readiness is its
// pod's, and Keycloak's pods must not leave their Service because their
// emitter stands by.
type readiness struct {
	routes []routeReady
	role   func() *role // nil outside cluster mode
}

// routeReady is what readiness reads of one route.
type routeReady struct {
	name     string
	source   func() *observedSource // nil until the source is open
	delivery func() *delivery
}

func (r readiness) notReady(now time.Time) string {
	if r.role != nil {
		if ro := r.role(); ro != nil && !ro.isLeader() {
			return ro.problem
		}
	}
	var problems []string
	for _, rt := range r.routes {
		problem := rt.notReady(now)
		if problem == "" {
			continue
		}
		if len(r.routes) == 1 {
			return problem
		}
		problems = append(problems, "route "+rt.name+": "+problem)
	}
	return strings.Join(problems, "; ")
}

func (r routeReady) notReady(now time.Time) string {
	src := r.source()
	if src == nil {
		return "source not opened yet"
	}
	if ok, at, err := src.last(); !ok {
		if at.IsZero() {
			return "source not read yet"
		}
		return "source failing since " + at.Format(time.RFC3339) + ": " + err.Error()
	}
	d := r.delivery()
	if since, answer, hint, held := d.hold.state(); held {
		return "target refuses every event since " + since.UTC().Format(time.RFC3339) + " (" + answer + ": " + hint +
			"): the route holds its position, " + strconv.Itoa(d.len()) + " events wait"
	}
	if n := d.len(); n > 0 && now.Sub(d.lastAnswer()) > readyAfter {
		// A failing target, or one that answers too slowly to finish a
		// request (a stalled response: see --requestTimeout).
		return "target took no event for " + strconv.Itoa(int(readyAfter.Seconds())) + "s while " +
			strconv.Itoa(n) + " wait"
	}
	return ""
}

// readyText is the body of a ready /readyz: "leader" or "standby" in
// cluster mode, else "ready"; with several routes, followed by their names.
func (r readiness) readyText() string {
	text := "ready"
	if r.role != nil {
		if ro := r.role(); ro != nil {
			text = "standby"
			if ro.isLeader() {
				text = "leader"
			}
		}
	}
	if len(r.routes) > 1 {
		names := make([]string, len(r.routes))
		for i, rt := range r.routes {
			names[i] = rt.name
		}
		text += " (routes " + strings.Join(names, ", ") + ")"
	}
	return text
}
