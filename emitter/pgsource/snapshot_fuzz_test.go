package pgsource

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseSnapshot parses what pg_current_snapshot() may return: no
// panic; text it accepts prints back to a snapshot it parses the same, and
// Running holds for every id past xmax.
func FuzzParseSnapshot(f *testing.F) {
	for _, s := range []string{"100:110:102,105", "5:5:", "0:0:", "1:2", "a:2:", "18446744073709551615:1:3", "1:2:,", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSnapshot(text)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", text)) {
				t.Fatalf("error %q does not name the text", err)
			}
			return
		}
		xip := make([]string, len(s.Xip))
		for i, x := range s.Xip {
			xip[i] = fmt.Sprint(x)
		}
		again, err := ParseSnapshot(fmt.Sprintf("%d:%d:%s", s.Xmin, s.Xmax, strings.Join(xip, ",")))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("printed back: %+v, %v; want %+v", again, err, s)
		}
		if !s.Running(s.Xmax) || s.Xmax < ^uint64(0) && !s.Running(s.Xmax+1) {
			t.Fatalf("%+v: an id at or past xmax is not running", s)
		}
		for _, x := range s.Xip {
			if x >= s.Xmin && x < s.Xmax && !s.Running(x) {
				t.Fatalf("%+v: %d of xip is not running", s, x)
			}
		}
	})
}
