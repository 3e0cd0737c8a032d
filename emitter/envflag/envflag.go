// Package envflag lets every flag of a flag.FlagSet be set by an environment
// variable too, reads secrets from a file or the environment, never from
// the command line, and sizes in bytes with binary units (32MiB): the rules
// both commands of kc-event-emitter share.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// Name returns the environment variable of the flag name under prefix: the
// name in upper snake case, a word starting at each upper-case letter and
// at each '-' (prefix "KC_EMITTER_": targetUri is KC_EMITTER_TARGET_URI,
// signing-secret-file is KC_EMITTER_SIGNING_SECRET_FILE).
func Name(prefix, flagName string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, r := range flagName {
		switch {
		case r == '-':
			b.WriteByte('_')
		case unicode.IsUpper(r) && i > 0:
			b.WriteByte('_')
			b.WriteRune(r)
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// Apply sets every flag of fs that the command line did not set from its
// environment variable (see Name), when that is set and not empty, and
// returns the names of all flags set either way. The error names the
// variable and its value.
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string) (map[string]bool, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := Name(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %w", name, v, serr)
			return
		}
		set[f.Name] = true
	})
	return set, err
}

// Secret returns the content of file, without its final line break, when
// file is set (the error names the flag fileFlag and the file), else the
// environment variable env.
func Secret(getenv func(string) string, file, fileFlag, env string) (string, error) {
	if file == "" {
		return getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s %q: %w", fileFlag, file, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
