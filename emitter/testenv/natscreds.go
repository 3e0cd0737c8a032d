package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// NATSOperator is a NATS operator of one test (decentralized JWT
// authentication): an account with JetStream and a user of it whose
// credentials (.creds: the user's JWT and NKey seed) are in CredsFile.
type NATSOperator struct {
	operator  *jwt.OperatorClaims
	resolver  *server.MemAccResolver
	sysPub    string
	CredsFile string
	// OtherCredsFile holds the credentials of a user of an account the
	// server does not know.
	OtherCredsFile string
}

// NewNATSOperator makes the operator, its system account, an account with
// JetStream and the users' .creds files.
func NewNATSOperator(t testing.TB) *NATSOperator {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	o := &NATSOperator{operator: jwt.NewOperatorClaims(opub), resolver: &server.MemAccResolver{}}
	ojwt, err := o.operator.Encode(okp)
	must(err)
	if o.operator, err = jwt.DecodeOperatorClaims(ojwt); err != nil {
		t.Fatal(err)
	}
	account := func(js bool) (nkeys.KeyPair, string) {
		akp, err := nkeys.CreateAccount()
		must(err)
		apub, err := akp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		must(err)
		must(o.resolver.Store(apub, ajwt))
		return akp, apub
	}
	_, o.sysPub = account(false)
	akp, _ := account(true)
	dir := t.TempDir()
	user := func(akp nkeys.KeyPair, name string) string {
		ukp, err := nkeys.CreateUser()
		must(err)
		upub, err := ukp.PublicKey()
		must(err)
		uc := jwt.NewUserClaims(upub)
		ujwt, err := uc.Encode(akp)
		must(err)
		seed, err := ukp.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(ujwt, seed)
		must(err)
		path := filepath.Join(dir, name+".creds")
		must(os.WriteFile(path, creds, 0o600))
		return path
	}
	o.CredsFile = user(akp, "emitter")
	stranger, err := nkeys.CreateAccount() // signed by no one the server trusts
	must(err)
	o.OtherCredsFile = user(stranger, "stranger")
	return o
}

// Configure sets the server's options to trust the operator.
func (o *NATSOperator) Configure(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{o.operator}
	opts.AccountResolver = o.resolver
	opts.SystemAccount = o.sysPub
}
