package envflag

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNameIsUpperSnakeCaseOfCamelAndKebabNames(t *testing.T) {
	for in, want := range map[string]string{
		"targetUri":           "KC_EMITTER_TARGET_URI",
		"dbUrlFile":           "KC_EMITTER_DB_URL_FILE",
		"signing-secret-file": "KC_EMITTER_SIGNING_SECRET_FILE",
		"once":                "KC_EMITTER_ONCE",
	} {
		if got := Name("KC_EMITTER_", in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestApplySetsFlagsFromTheEnvironmentUnlessTheCommandLineDid(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	a, b := fs.String("alpha", "", ""), fs.Int("betaCount", 0, "")
	c := fs.String("gamma", "default", "")
	if err := fs.Parse([]string{"--alpha", "from-args"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"P_ALPHA": "from-env", "P_BETA_COUNT": "7"}
	set, err := Apply(fs, "P_", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if *a != "from-args" || *b != 7 || *c != "default" {
		t.Errorf("alpha %q, betaCount %d, gamma %q; want from-args, 7, default", *a, *b, *c)
	}
	if !set["alpha"] || !set["betaCount"] || set["gamma"] {
		t.Errorf("set = %v, want alpha and betaCount only", set)
	}
	env["P_BETA_COUNT"] = "seven"
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Int("betaCount", 0, "")
	if _, err := Apply(fs2, "P_", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), `P_BETA_COUNT="seven"`) {
		t.Errorf("bad value: %v, want an error naming the variable and the value", err)
	}
}

func TestSecretComesFromTheFileOrElseTheEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte("s3cret\r\n"), 0o600)
	getenv := func(string) string { return "from-env" }
	if got, err := Secret(getenv, file, "secretFile", "X"); err != nil || got != "s3cret" {
		t.Errorf("from the file: %q, %v", got, err)
	}
	if got, _ := Secret(getenv, "", "secretFile", "X"); got != "from-env" {
		t.Errorf("from the environment: %q", got)
	}
	if _, err := Secret(getenv, file+".missing", "secretFile", "X"); err == nil || !strings.Contains(err.Error(), "--secretFile") {
		t.Errorf("missing file: %v, want an error naming the flag", err)
	}
}

func TestBytesReadsCountsAndBinaryUnitsAndRefusesTheRestNamingTheValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string // a part of the error; "" for none
	}{
		{"8388608", 8 << 20, ""},
		{"8MiB", 8 << 20, ""},
		{"8 MiB", 8 << 20, ""},
		{"8mib", 8 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1Gi", 1 << 30, ""},
		{"4096B", 4096, ""},
		{"0", 0, ""},
		{"8MB", 0, `size "8MB": unit "MB"`},
		{"1.5MiB", 0, `size "1.5MiB": want a whole number`},
		{"-1", 0, `size "-1": want a whole number`},
		{"+1", 0, `size "+1": want a whole number`},
		{"MiB", 0, `size "MiB"`},
		{"", 0, `size ""`},
		{"9999999999GiB", 0, `size "9999999999GiB"`},
	} {
		got, err := ParseBytes(c.in)
		if c.err == "" && (err != nil || got != c.want) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseBytes(%q) = %d, %v; want an error with %q", c.in, got, err, c.err)
		}
	}
}

func TestBytesFlagShowsItsDefaultInTheLargestUnitAndParsesBack(t *testing.T) {
	for n, want := range map[int64]string{16 << 20: "16MiB", 4096: "4KiB", 1000: "1000", 0: "0", 3 << 30: "3GiB", 1<<20 + 1: "1048577"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var v int64
		BytesVar(fs, &v, "size", n, "a size")
		if got := fs.Lookup("size").DefValue; got != want {
			t.Errorf("default %d shows as %q, want %q", n, got, want)
		}
		if err := fs.Parse([]string{"--size", want}); err != nil || v != n {
			t.Errorf("--size %s = %d, %v; want %d", want, v, err, n)
		}
	}
}
