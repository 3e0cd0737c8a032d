package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenDir holds the wire payloads the emitter's encoders are pinned to.
var goldenDir = filepath.Join("..", "..", "testdata", "golden", "wire")

// jsonGolden is the JSON golden payload of a case, read with encoding/json.
type jsonGolden struct {
	UID           int64
	Time          int64
	Type          *string
	RealmID       *string
	OperationType *string
	ResourceType  *string
}

func TestDecoderReadsEveryGoldenPayload(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	if err != nil || len(files) < 4 {
		t.Fatalf("golden payloads: %v, %v", files, err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			// <case>.JSON.golden or <case>.FLATBUFFER-<numbering>.golden
			parts := strings.SplitN(strings.TrimSuffix(name, ".golden"), ".", 2)
			kase, format, numbering := parts[0], parts[1], "20.1"
			if f, n, ok := strings.Cut(parts[1], "-"); ok {
				format, numbering = f, n
			}
			decode, err := newDecoder(numbering)
			if err != nil {
				t.Fatal(err)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := decode(body)
			if err != nil {
				t.Fatal(err)
			}
			var ref jsonGolden
			refBody, err := os.ReadFile(filepath.Join(goldenDir, kase+".JSON.golden"))
			if err != nil || json.Unmarshal(refBody, &ref) != nil {
				t.Fatalf("reference %s.JSON.golden: %v", kase, err)
			}
			kind, typ := "Event", deref(ref.Type)
			if strings.HasPrefix(kase, "admin-") {
				kind, typ = "AdminEvent", deref(ref.OperationType)+":"+deref(ref.ResourceType)
			}
			r := ev.Row
			if ev.Format != format || r.UID != ref.UID || r.Time != ref.Time || r.Kind != kind || r.RealmID != deref(ref.RealmID) {
				t.Fatalf("row %+v format %s; want uid %d time %d kind %s realm %q format %s",
					r, ev.Format, ref.UID, ref.Time, kind, deref(ref.RealmID), format)
			}
			// A FLATBUFFER receiver reads UNKNOWN for names its numbering
			// lacks, and 0 (CREATE, REALM) for unset admin types.
			if r.Type != typ && !(format == "FLATBUFFER" && (strings.Contains(r.Type, "UNKNOWN") || strings.HasPrefix(typ, ":"))) {
				t.Fatalf("type %q, want %q", r.Type, typ)
			}
			var stored struct{ UID *int64 }
			if err := json.Unmarshal(r.Payload, &stored); err != nil || stored.UID == nil || *stored.UID != ref.UID {
				t.Fatalf("stored payload %s: %v; want a JSON object with uid %d", r.Payload, err, ref.UID)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestReceiverStoresAFlatBufferDeliveryAsJSON(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.jsonl")
	cfg := config{Path: "/event/receiver", Store: storeSpec{Kind: "jsonl", Arg: store}, Numbering: "26",
		Username: "kc", Password: "pw", MaxBodyBytes: 1 << 20}
	var out bytes.Buffer
	a, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	body, err := os.ReadFile(filepath.Join(goldenDir, "admin-create-user.FLATBUFFER-26.golden"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL+cfg.Path, bytes.NewReader(body))
	req.SetBasicAuth("kc", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "AdminEvent CREATE:USER realm=2d6c3a5e-realm") || !strings.Contains(out.String(), "format=FLATBUFFER stored") {
		t.Fatalf("printed %q", out.String())
	}
	f, err := os.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("nothing stored")
	}
	if line := sc.Text(); !strings.Contains(line, `"extAuthDetails":{"realmId":"master-id"`) || !strings.Contains(line, `"username":"admin"`) {
		t.Fatalf("stored %s, want the event as JSON with its auth details", line)
	}
}
