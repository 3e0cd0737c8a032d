package emitter

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// schemaOf is the schema file of each numbering in fbs/.
var schemaOf = map[Numbering]string{
	Numbering201:    "events.fbs",
	NumberingBridge: "events-bridge.fbs",
	Numbering26:     "events-26.fbs",
}

// TestFlatcDecodesTheGoldenFlatBuffers has flatc's own C++ reader, an
// implementation independent of the Go runtime, decode every golden
// FLATBUFFER payload with the schema of its numbering.
func TestFlatcDecodesTheGoldenFlatBuffers(t *testing.T) {
	flatc, err := exec.LookPath("flatc")
	if err != nil {
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			t.Fatal("flatc not found and KCEE_REQUIRE_SERVERS=1: install the Debian package flatbuffers-compiler")
		}
		t.Skip("flatc not found (Debian package flatbuffers-compiler)")
	}
	tmp := t.TempDir()
	for _, c := range wireCases {
		for _, n := range numberings {
			name := goldenName(c, FormatFlatBuffer, n)
			t.Run(name, func(t *testing.T) {
				payload, err := os.ReadFile(filepath.Join(goldenDir, name))
				if err != nil {
					t.Fatal(err)
				}
				var container struct{ Type, Obj string }
				if err := json.Unmarshal(payload, &container); err != nil {
					t.Fatal(err)
				}
				buf, err := base64.StdEncoding.DecodeString(container.Obj)
				if err != nil {
					t.Fatal(err)
				}
				bin := filepath.Join(tmp, name+".bin")
				if err := os.WriteFile(bin, buf, 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(flatc, "--json", "--strict-json", "--raw-binary", "--defaults-json",
					"--no-warnings", "--root-type", "flatbuffers.events."+container.Type, "-o", tmp,
					filepath.Join("..", "fbs", schemaOf[n]), "--", bin).CombinedOutput()
				if err != nil {
					t.Fatalf("flatc: %v\n%s", err, out)
				}
				js, err := os.ReadFile(filepath.Join(tmp, name+".json"))
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					UID, Time                                              int64
					Type, ResourceType, OperationType                      string
					RealmID, ClientID, UserID, SessionID, IPAddress, Error string
					ResourcePath, Representation                           string
					AuthDetails                                            *struct{ RealmID, ClientID, UserID, Username, IPAddress string }
					Details                                                []struct{ Key, Value string }
				}
				if err := json.Unmarshal(js, &got); err != nil {
					t.Fatalf("flatc wrote %s: %v", js, err)
				}
				details := map[string]string{}
				for _, d := range got.Details {
					details[d.Key] = d.Value
				}
				rec := c.rec()
				enums, _ := enumsOf(n)
				var gotS, wantS string
				if e := rec.Event; e != nil {
					want := maps.Clone(e.Details)
					if want == nil {
						want = map[string]string{}
					}
					gotS = fmt.Sprint(got.UID, got.Time, got.Type, got.RealmID, got.ClientID, got.UserID,
						got.SessionID, got.IPAddress, got.Error, details)
					wantS = fmt.Sprint(e.UID, e.Time, enumName(enums.eventValue, e.Type, "UNKNOWN"), e.RealmID,
						e.ClientID, e.UserID, e.SessionID, e.IPAddress, e.Error, want)
				} else {
					a, d := rec.Admin, rec.Admin.AuthDetails
					if got.AuthDetails == nil {
						t.Fatalf("no authDetails in %s", js)
					}
					want := maps.Clone(a.Details)
					if want == nil {
						want = map[string]string{}
					}
					gotS = fmt.Sprint(got.UID, got.Time, got.RealmID, *got.AuthDetails, details, got.ResourceType,
						got.OperationType, got.ResourcePath, got.Representation, got.Error)
					wantS = fmt.Sprint(a.UID, a.Time, a.RealmID,
						struct{ RealmID, ClientID, UserID, Username, IPAddress string }{d.RealmID, d.ClientID, d.UserID, d.Username, d.IPAddress},
						want, enumName(enums.resourceValue, a.ResourceType, "REALM"),
						enumName(operationValue, a.OperationType, "CREATE"), a.ResourcePath, a.Representation, a.Error)
				}
				if gotS != wantS {
					t.Fatalf("flatc read\n %s\nwant\n %s", gotS, wantS)
				}
			})
		}
	}
}
