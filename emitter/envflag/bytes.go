package envflag

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// byteUnits are the units a size may carry: binary multiples only, so
// that "MiB" means what the documentation's budgets mean.
var byteUnits = []struct {
	names []string
	shift uint
}{
	{[]string{"GiB", "Gi"}, 30},
	{[]string{"MiB", "Mi"}, 20},
	{[]string{"KiB", "Ki"}, 10},
	{[]string{"B", ""}, 0},
}

// ParseBytes reads a size in bytes: a count (8388608) or a count with a
// binary unit (8MiB, 8 MiB, 512KiB, 1Gi; KiB, MiB and GiB, Ki, Mi and Gi,
// in any case). A decimal unit (MB) is refused rather than guessed.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	end := strings.IndexFunc(t, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsSpace(r) })
	if end < 0 {
		end = len(t)
	}
	num, unit := t[:end], strings.TrimSpace(t[end:])
	for _, u := range byteUnits {
		for _, name := range u.names {
			if !strings.EqualFold(unit, name) {
				continue
			}
			n, err := strconv.ParseUint(num, 10, 63)
			if err != nil || n > math.MaxInt64>>u.shift {
				return 0, fmt.Errorf("size %q: want a whole number of bytes, KiB, MiB or GiB (8388608, 8MiB)", s)
			}
			return int64(n) << u.shift, nil
		}
	}
	return 0, fmt.Errorf("size %q: unit %q: want bytes, KiB, MiB or GiB (8388608, 8MiB; 1 MiB is 1,048,576 bytes)", s, unit)
}

// formatBytes writes n as ParseBytes reads it, in the largest unit that
// divides it (16MiB, 4KiB; 1000 stays 1000).
func formatBytes(n int64) string {
	if n != 0 {
		for _, u := range byteUnits[:3] {
			if n%(1<<u.shift) == 0 {
				return strconv.FormatInt(n>>u.shift, 10) + u.names[0]
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// bytesValue is a size in bytes as a flag (and its environment
// variable): what ParseBytes reads.
type bytesValue int64

// Set implements flag.Value.
func (b *bytesValue) Set(s string) error {
	n, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = bytesValue(n)
	return nil
}

// String implements flag.Value.
func (b *bytesValue) String() string {
	if b == nil {
		return "0"
	}
	return formatBytes(int64(*b))
}

// BytesVar defines a size flag that stores into p, with value as its
// default (shown in the largest unit that divides it); usage names the
// value's kind in back quotes, as for the flag package's own.
func BytesVar(fs *flag.FlagSet, p *int64, name string, value int64, usage string) {
	*p = value
	fs.Var((*bytesValue)(p), name, usage)
}
