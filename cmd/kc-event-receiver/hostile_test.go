package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

// jsonEvent is a JSON delivery whose type and username are the given raw
// JSON tokens (so that a test can put any escape in them).
func jsonEvent(uid int64, typ, username string) string {
	return fmt.Sprintf(`{"time":1760000000000,"type":%s,"realmId":"r1","clientId":"c","userId":"u","sessionId":null,`+
		`"ipAddress":"127.0.0.1","error":null,"details":{"username":%s},"uid":%d,"id":"kc-%d"}`, typ, username, uid, uid)
}

// flatEvent is a FLATBUFFER delivery of an event with the given realm id
// and username. The emitter's encoder writes only valid UTF-8, a hostile
// sender need not: it encodes placeholders of the same lengths and puts the
// raw bytes in their place in the FlatBuffer.
func flatEvent(t *testing.T, uid int64, realm, username string) string {
	t.Helper()
	enc, err := emitter.NewEncoder(emitter.FormatFlatBuffer, emitter.Numbering201)
	if err != nil {
		t.Fatal(err)
	}
	realmPH, userPH := strings.Repeat("Q", len(realm)), strings.Repeat("W", len(username))
	b, err := enc.Encode(nil, emitter.Record{Event: &emitter.Event{ID: fmt.Sprintf("kc-%d", uid), UID: uid, Time: 1_760_000_000_000,
		Type: "LOGIN", RealmID: realmPH, Details: map[string]string{"username": userPH}}})
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Type, Obj string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	fb, err := base64.StdEncoding.DecodeString(c.Obj)
	if err != nil {
		t.Fatal(err)
	}
	for ph, v := range map[string]string{realmPH: realm, userPH: username} {
		if bytes.Count(fb, []byte(ph)) != 1 {
			t.Fatalf("placeholder %q is not once in the FlatBuffer", ph)
		}
		fb = bytes.Replace(fb, []byte(ph), []byte(v), 1)
	}
	out, _ := json.Marshal(map[string]string{"type": c.Type, "obj": base64.StdEncoding.EncodeToString(fb)})
	return string(out)
}

// postTo posts body to the app's endpoint and returns the status.
func postTo(t *testing.T, srv *httptest.Server, body string) int {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+"/event/receiver", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBothStoresTakeOrRefuseTheSameBodies posts the same hostile deliveries,
// in both wire formats, to a receiver with each store (PostgreSQL a real
// one): both answer the same, and what the JSON-lines store wrote is valid
// JSON in valid UTF-8.
func TestBothStoresTakeOrRefuseTheSameBodies(t *testing.T) {
	bodies := []struct {
		name string
		body func(uid int64) string
		want int
	}{
		{"plain", func(u int64) string { return jsonEvent(u, `"LOGIN"`, `"alice"`) }, 200},
		{"newline in the type", func(u int64) string { return jsonEvent(u, `"LOGIN\n2025 Event FORGED stored"`, `"alice"`) }, 200},
		{"surrogate pair", func(u int64) string { return jsonEvent(u, `"LOGIN"`, `"\ud83d\ude00"`) }, 200},
		{"invalid UTF-8 in the username", func(u int64) string { return jsonEvent(u, `"LOGIN"`, "\"al\xffice\"") }, 400},
		{"unpaired surrogate in the username", func(u int64) string { return jsonEvent(u, `"LOGIN"`, `"\ud800"`) }, 400},
		{"unpaired surrogate in the type", func(u int64) string { return jsonEvent(u, `"LOGIN\udfff"`, `"alice"`) }, 400},
		{"NUL in the username", func(u int64) string { return jsonEvent(u, `"LOGIN"`, `"a\u0000"`) }, 400},
		{"NUL in the type", func(u int64) string { return jsonEvent(u, `"LOG\u0000IN"`, `"alice"`) }, 400},
		{"number beyond PostgreSQL's numeric", func(u int64) string { return jsonEvent(u, `"LOGIN"`, `1e200000`) }, 400},
		{"FLATBUFFER, plain", func(u int64) string { return flatEvent(t, u, "r1", "alice") }, 200},
		{"FLATBUFFER, NUL in the realm", func(u int64) string { return flatEvent(t, u, "r\x001", "alice") }, 400},
		{"FLATBUFFER, invalid UTF-8 in the realm", func(u int64) string { return flatEvent(t, u, "r\xff", "alice") }, 400},
		// The FLATBUFFER payload is stored as the emitter's JSON of the
		// event, which writes invalid UTF-8 as U+FFFD: taken, by both.
		{"FLATBUFFER, invalid UTF-8 in the username", func(u int64) string { return flatEvent(t, u, "r1", "al\xffice") }, 200},
	}
	stores := []struct {
		name string
		spec func(t *testing.T) storeSpec
	}{
		{"jsonl", func(t *testing.T) storeSpec { return storeSpec{"jsonl", filepath.Join(t.TempDir(), "events.jsonl")} }},
		{"postgres", func(t *testing.T) storeSpec { return storeSpec{"postgres", newTestDatabase(t)} }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			cfg := config{Path: "/event/receiver", Store: st.spec(t), Numbering: "20.1", MaxBodyBytes: 1 << 20}
			a, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(a.mux)
			defer srv.Close()
			for i, b := range bodies {
				if got := postTo(t, srv, b.body(int64(100+i))); got != b.want {
					t.Errorf("%s: status %d, want %d", b.name, got, b.want)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Kind != "jsonl" {
				return
			}
			data, err := os.ReadFile(cfg.Store.Arg)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			n := 0
			for sc.Scan() {
				n++
				if !utf8.Valid(sc.Bytes()) || !json.Valid(sc.Bytes()) {
					t.Errorf("line %d is not valid JSON in valid UTF-8: %q", n, sc.Text())
				}
			}
			want := 0
			for _, b := range bodies {
				if b.want == 200 {
					want++
				}
			}
			if n != want {
				t.Errorf("%d lines stored, want %d", n, want)
			}
		})
	}
}

// TestPrintedLineEscapesWhatTheSenderControls posts events whose fields
// hold newlines, blanks, quotes and terminal escapes: each prints exactly
// one line, with those fields quoted.
func TestPrintedLineEscapesWhatTheSenderControls(t *testing.T) {
	var out bytes.Buffer
	a, err := newApp(t.Context(), config{Path: "/event/receiver", Numbering: "20.1", MaxBodyBytes: 1 << 20},
		slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	for _, tc := range []struct{ typ, want string }{
		{`"LOGIN"`, " LOGIN realm=r1 "},
		{`"LOGIN\n2025-10-09T08:53:20.000Z Event FORGED realm=r1 uid=1 id=x format=JSON stored"`,
			` "LOGIN\n2025-10-09T08:53:20.000Z Event FORGED realm=r1 uid=1 id=x format=JSON stored" realm=r1 `},
		{`"LOGIN realm=forged"`, ` "LOGIN realm=forged" realm=r1 `},
		{`"\u001b[31mRED\u001b[0m"`, ` "\x1b[31mRED\x1b[0m" realm=r1 `},
		{`"a\rb"`, ` "a\rb" realm=r1 `},
		{`"LINE\u2028SEP"`, ` "LINE\u2028SEP" realm=r1 `},
		{`"é😀"`, " é😀 realm=r1 "},
	} {
		out.Reset()
		if got := postTo(t, srv, jsonEvent(7, tc.typ, `"alice"`)); got != http.StatusOK {
			t.Fatalf("type %s: status %d", tc.typ, got)
		}
		if lines := strings.Count(out.String(), "\n"); lines != 1 {
			t.Errorf("type %s printed %d lines, want 1: %q", tc.typ, lines, out.String())
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("type %s printed %q, want it to contain %q", tc.typ, out.String(), tc.want)
		}
	}
}

// FuzzReceiverBody posts arbitrary bodies to the receiver as the binary
// wires it (decoder of both formats, JSON-lines store, printed line): it
// answers 200 or 400 only, prints exactly one line per event it took, and
// its store holds only valid JSON in valid UTF-8.
func FuzzReceiverBody(f *testing.F) {
	f.Add([]byte(loginJSON))
	f.Add([]byte(jsonEvent(1, `"LOGIN\n2025 forged"`, `"\ud800"`)))
	f.Add([]byte(jsonEvent(2, `"LOGIN"`, `1e200000`)))
	for _, name := range []string{"admin-create-user.FLATBUFFER-26.golden", "admin-create-user.JSON.golden"} {
		if b, err := os.ReadFile(filepath.Join(goldenDir, name)); err == nil {
			f.Add(b)
		}
	}
	store := filepath.Join(f.TempDir(), "events.jsonl")
	var out bytes.Buffer
	a, err := newApp(f.Context(), config{Path: "/event/receiver", Store: storeSpec{"jsonl", store}, Numbering: "20.1",
		MaxBodyBytes: 1 << 20, NoSync: true}, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	file, err := os.Open(store) // newApp created it
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		out.Reset()
		req := httptest.NewRequest("POST", "/event/receiver", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		a.mux.ServeHTTP(rec, req)
		data, err := io.ReadAll(file) // what this delivery added to the store
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Code {
		case 200:
			if strings.Count(out.String(), "\n") != 1 {
				t.Fatalf("printed %q for one event", out.String())
			}
			wantLines := 1
			if strings.HasSuffix(out.String(), " duplicate\n") {
				wantLines = 0 // a uid an earlier input stored
			}
			if strings.Count(string(data), "\n") != wantLines || !utf8.Valid(data) || (wantLines == 1 && !json.Valid(data)) {
				t.Fatalf("stored %q, want %d line(s) of valid JSON in valid UTF-8", data, wantLines)
			}
		case 400:
			if out.Len() != 0 || len(data) != 0 {
				t.Fatalf("refused, yet printed %q and stored %q", out.String(), data)
			}
		default:
			t.Fatalf("status %d (%s), want 200 or 400", rec.Code, rec.Body)
		}
	})
}
