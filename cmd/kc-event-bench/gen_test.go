package main

import (
	"encoding/json"
	"math"
	"regexp"
	"testing"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSeqUUIDIsAVersion4UUIDThatGivesItsSequenceBack(t *testing.T) {
	for _, seq := range []uint64{0, 1, 255, 999_999, 1 << 40, 1<<48 - 1} {
		for _, salt := range []uint64{saltID, saltSession, saltResource} {
			id := seqUUID(salt, seq)
			if !uuidShape.MatchString(id) {
				t.Errorf("seqUUID(%d, %d) = %q, not a version 4 UUID", salt, seq, id)
			}
			got, ok := seqOf(id)
			if !ok || uint64(got) != seq {
				t.Errorf("seqOf(%q) = %d, %v; want %d", id, got, ok, seq)
			}
		}
	}
	if seqUUID(saltID, 7) == seqUUID(saltSession, 7) {
		t.Error("the salts give the same UUID")
	}
}

func TestSeqOfRefusesWhatSeqUUIDDidNotMake(t *testing.T) {
	for _, s := range []string{"", "short", "users/", "xxxxxxxxxxxx", "users/not-a-uuid-zzzzzzzzzzzz"} {
		if n, ok := seqOf(s); ok {
			t.Errorf("seqOf(%q) = %d, true; want false", s, n)
		}
	}
}

func TestGeneratorMakesTheRealisticMixWithRecoverableSequences(t *testing.T) {
	const n = 20000
	w := newWorld(5, 20)
	g := newGenerator(w, 42)
	counts := map[string]int{}
	ids := map[string]bool{}
	for seq := range n {
		r := g.next(seq, 1_760_000_000_000)
		if ids[r.id] {
			t.Fatalf("event %d: id %s used twice", seq, r.id)
		}
		ids[r.id] = true
		if r.realmID == w.realms[0].id {
			t.Fatalf("event %d is in master; events go to the other realms", seq)
		}
		carrier := r.session
		if r.admin {
			counts["admin"]++
			carrier = r.resourcePath
			if r.representation != "" && !json.Valid([]byte(r.representation)) {
				t.Fatalf("event %d: representation is not JSON: %s", seq, r.representation)
			}
			if r.authRealm != w.realms[0].id || r.authUser != w.realms[0].users[0].id {
				t.Fatalf("event %d: admin event not made by master's admin", seq)
			}
		} else {
			counts[r.typ]++
			if !json.Valid([]byte(r.details)) {
				t.Fatalf("event %d: details are not JSON: %s", seq, r.details)
			}
		}
		if got, ok := seqOf(carrier); !ok || got != seq {
			t.Fatalf("event %d carries sequence %d, %v", seq, got, ok)
		}
	}
	for kind, pct := range map[string]int{"admin": pctAdmin, "LOGIN": pctLogin, "LOGIN_ERROR": pctLoginError,
		"CODE_TO_TOKEN": 100 - pctAdmin - pctLogin - pctLoginError} {
		got := 100 * float64(counts[kind]) / n
		if math.Abs(got-float64(pct)) > 1.5 {
			t.Errorf("%s: %.1f%% of the events, want about %d%%", kind, got, pct)
		}
	}
}

func TestGeneratorIsDeterministicForASeed(t *testing.T) {
	w := newWorld(3, 4)
	a, b := newGenerator(w, 7), newGenerator(w, 7)
	for seq := range 100 {
		if ra, rb := a.next(seq, 1), b.next(seq, 1); ra != rb {
			t.Fatalf("event %d differs between two generators with seed 7:\n%+v\n%+v", seq, ra, rb)
		}
	}
}
