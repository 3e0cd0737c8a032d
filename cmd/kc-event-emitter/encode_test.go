package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

const (
	apiLogin = `{"id":"e-1","time":1763900000123,"type":"LOGIN","realmId":"r-1","clientId":"account","userId":"u-1","sessionId":"s-1","ipAddress":"127.0.0.1","details":{"auth_method":"openid-connect"}}`
	apiAdmin = `{"id":"a-1","time":1763900000200,"realmId":"r-1","authDetails":{"realmId":"m","clientId":"c","userId":"u-admin","ipAddress":"10.0.0.1"},"operationType":"CREATE","resourceType":"USER","resourcePath":"users/u-1","representation":"{\"username\":\"bob\"}"}`
)

func runEncode(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = dispatch(append([]string{"encode"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestEncodeWritesOnePayloadPerEventLineInEitherFormat(t *testing.T) {
	for _, tt := range []struct {
		format    emitter.Format
		numbering string
	}{{emitter.FormatJSON, "20.1"}, {emitter.FormatFlatBuffer, "20.1"}, {emitter.FormatFlatBuffer, "bridge"}, {emitter.FormatFlatBuffer, "26"}} {
		t.Run(string(tt.format)+"/"+tt.numbering, func(t *testing.T) {
			code, stdout, stderr := runEncode(t, apiLogin+"\n\n  "+apiAdmin, "--format", string(tt.format),
				"--keycloakId", "7", "--datacenterId", "3", "--numbering", tt.numbering)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d payload lines, want 2:\n%s", len(lines), stdout)
			}
			var prev int64
			for i, want := range []string{"LOGIN", "CREATE:USER"} {
				rec, f, err := emitter.DecodePayload([]byte(lines[i]), emitter.Numbering(tt.numbering))
				if err != nil || f != tt.format {
					t.Fatalf("line %d %q: %v, %v", i+1, lines[i], f, err)
				}
				if rec.TypeName() != want || rec.RealmID() != "r-1" {
					t.Fatalf("line %d decodes to %s of realm %s, want %s of r-1", i+1, rec.TypeName(), rec.RealmID(), want)
				}
				if k, dc := emitter.UIDNode(rec.UID()); k != 7 || dc != 3 || rec.UID() <= prev {
					t.Fatalf("line %d: uid %d of node %d/%d, want a new uid of keycloakId 7, datacenterId 3", i+1, rec.UID(), k, dc)
				}
				prev = rec.UID()
			}
		})
	}
}

func TestEncodeReportsBadLinesByNumberAndStillEncodesTheOthers(t *testing.T) {
	in := strings.Join([]string{apiLogin, `{"time":`, apiAdmin, `[1,2]`, `{"operationType":"PATCH"}`}, "\n")
	code, stdout, stderr := runEncode(t, in, "--format", "FLATBUFFER")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if n := strings.Count(stdout, "\n"); n != 2 {
		t.Fatalf("%d payloads, want the 2 good lines:\n%s", n, stdout)
	}
	for _, want := range []string{"line 2: ", "line 4: event JSON: not a JSON object", `line 5: operation type "PATCH"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if strings.Contains(stderr, "line 1:") || strings.Contains(stderr, "line 3:") {
		t.Errorf("good lines reported: %q", stderr)
	}
}

func TestEncodeRejectsBadFlagsWithStatus2(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "XML"}, `--format: format "XML"`},
		{[]string{"--numbering", "21"}, `--numbering: numbering "21"`},
		{[]string{"--keycloakId", "32"}, "keycloakId 32"},
		{[]string{"--datacenterId", "4"}, "datacenterId 4"},
		{[]string{"--keycloakId", "x"}, "invalid value"},
		{[]string{"--nope"}, "not defined: -nope"},
		{[]string{"file.json"}, `unexpected argument "file.json"`},
	} {
		code, stdout, stderr := runEncode(t, apiLogin, tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("encode %v: exit %d, stdout %q, stderr %q; want 2 and %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
}

func TestEncodeHelpListsTheFlags(t *testing.T) {
	code, _, stderr := runEncode(t, "", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--format", "-keycloakId", "-datacenterId", "-numbering", "operationType"} {
		if !strings.Contains(stderr, strings.TrimLeft(want, "-")) {
			t.Errorf("help lacks %q:\n%s", want, stderr)
		}
	}
}
