package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// The generated events carry their sequence number (0, 1, 2, ...) in the
// last group of a UUID that both wire formats deliver: the session id of an
// Event and the resource path of an AdminEvent. Keycloak's own event id is
// not in the FLATBUFFER format, so the receiver cannot use it.

// seqUUID returns a version-4-shaped UUID whose last group is seq in hex and
// whose other groups depend on salt and seq, so that ids look random.
func seqUUID(salt, seq uint64) string {
	h := mix(salt ^ seq*0x9e3779b97f4a7c15)
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		uint32(h), uint16(h>>32), uint16(h>>48)&0xfff, 0x8000|uint16(h>>20)&0x3fff, seq&0xffffffffffff)
}

// seqOf returns the sequence number seqUUID put at the end of s.
func seqOf(s string) (int, bool) {
	if len(s) < 12 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[len(s)-12:], 16, 48)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// mix is SplitMix64's finalizer: a cheap bijective scramble.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Salts keep the ids of different columns apart.
const (
	saltID uint64 = iota + 1
	saltSession
	saltResource
	saltCode
	saltToken
	saltRealm
	saltUser
	saltClient
)

// realm is a realm of the benchmark database with its users.
type realm struct {
	id, name string
	users    []user
	clientID string // internal id of the realm's confidential client
}

type user struct{ id, name string }

// world is the realms (the first is master, home of the admin that makes
// the admin events) and their users.
type world struct {
	realms []realm
}

// newWorld returns realms master plus n realms named bench-000, ..., each
// with usersPerRealm users.
func newWorld(n, usersPerRealm int) world {
	var w world
	for i := range n + 1 {
		r := realm{id: seqUUID(saltRealm, uint64(i)), name: fmt.Sprintf("bench-%03d", i-1),
			clientID: seqUUID(saltClient, uint64(i))}
		if i == 0 {
			r.name = "master"
		}
		for j := range usersPerRealm {
			k := uint64(i*usersPerRealm + j)
			r.users = append(r.users, user{id: seqUUID(saltUser, k), name: fmt.Sprintf("user-%03d-%05d", i, j)})
		}
		w.realms = append(w.realms, r)
	}
	return w
}

// row is one event as Keycloak stores it: an event_entity row, or an
// admin_event_entity row when admin is set.
type row struct {
	admin   bool
	id      string
	realmID string
	time    int64 // ms since the epoch
	typ     string
	client  string
	userID  string
	session string
	ip      string
	err     string
	details string // details_json; "" is NULL

	// admin_event_entity only
	op, resourceType, resourcePath, representation string
	authRealm, authClient, authUser                string
}

// The mix of event kinds, in percent (the rest are CODE_TO_TOKEN): a login
// is followed by its code-to-token exchange, some logins fail, and a few
// administrators work on users.
const (
	pctAdmin      = 5
	pctLogin      = 42
	pctLoginError = 10
)

// generator makes the rows of a benchmark, deterministically from its seed.
type generator struct {
	w    world
	rng  *rand.Rand
	base int // added to every sequence number
}

func newGenerator(w world, seed uint64) *generator {
	return &generator{w: w, rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// newGeneratorFrom is a generator whose event i is numbered base + i.
func newGeneratorFrom(w world, seed uint64, base int) *generator {
	g := newGenerator(w, seed)
	g.base = base
	return g
}

// next returns event number seq, stamped with time ms. Events go to the
// realms other than master; admin events are made by master's admin.
func (g *generator) next(seq int, ms int64) row {
	seq += g.base
	s := uint64(seq)
	realms := g.w.realms
	if len(realms) > 1 {
		realms = realms[1:]
	}
	r := realms[g.rng.IntN(len(realms))]
	u := r.users[g.rng.IntN(len(r.users))]
	ip := fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
	redirect := "https://app.example.test/" + r.name + "/callback"
	code := seqUUID(saltCode, s)
	pick := g.rng.IntN(100)
	switch {
	case pick < pctAdmin:
		master := g.w.realms[0]
		admin := master.users[0]
		ops := [...]string{"CREATE", "UPDATE", "UPDATE", "ACTION", "DELETE"}
		op := ops[g.rng.IntN(len(ops))]
		rep := ""
		if op == "CREATE" || op == "UPDATE" {
			rep = fmt.Sprintf(`{"id":%q,"username":%q,"enabled":true,"emailVerified":false,"firstName":"Bench","lastName":"User %d","email":"%s@example.test","attributes":{"department":["engineering"]},"requiredActions":[],"groups":[]}`,
				u.id, u.name, seq, u.name)
		}
		return row{admin: true, id: seqUUID(saltID, s), realmID: r.id, time: ms, ip: ip,
			op: op, resourceType: "USER", resourcePath: "users/" + seqUUID(saltResource, s), representation: rep,
			authRealm: master.id, authClient: master.clientID, authUser: admin.id}
	case pick < pctAdmin+pctLogin:
		return row{id: seqUUID(saltID, s), realmID: r.id, time: ms, typ: "LOGIN", client: "web-app", userID: u.id,
			session: seqUUID(saltSession, s), ip: ip,
			details: fmt.Sprintf(`{"auth_method":"openid-connect","auth_type":"code","response_type":"code","redirect_uri":%q,"consent":"no_consent_required","code_id":%q,"username":%q,"response_mode":"query"}`,
				redirect, code, u.name)}
	case pick < pctAdmin+pctLogin+pctLoginError:
		return row{id: seqUUID(saltID, s), realmID: r.id, time: ms, typ: "LOGIN_ERROR", client: "web-app", userID: u.id,
			session: seqUUID(saltSession, s), ip: ip, err: "invalid_user_credentials",
			details: fmt.Sprintf(`{"auth_method":"openid-connect","auth_type":"code","response_type":"code","redirect_uri":%q,"code_id":%q,"username":%q,"response_mode":"query"}`,
				redirect, code, u.name)}
	default:
		return row{id: seqUUID(saltID, s), realmID: r.id, time: ms, typ: "CODE_TO_TOKEN", client: "web-app", userID: u.id,
			session: seqUUID(saltSession, s), ip: ip,
			details: fmt.Sprintf(`{"token_id":%q,"grant_type":"authorization_code","refresh_token_type":"Refresh","scope":"openid profile email","refresh_token_id":%q,"code_id":%q,"client_auth_method":"client-secret"}`,
				seqUUID(saltToken, s), seqUUID(saltToken, s^1<<40), code)}
	}
}
