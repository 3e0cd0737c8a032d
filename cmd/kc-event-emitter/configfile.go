package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
)

// The configuration file (--config): YAML, the global settings under the
// names of their flags and the routes under routes:. Secrets are never
// written in it: a key ending in File names a file holding the secret, one
// ending in Env the environment variable holding it.
type fileConfig struct {
	KeycloakID   *int64 `yaml:"keycloakId"`
	DatacenterID *int64 `yaml:"datacenterId"`

	Source     string         `yaml:"source"`
	DBURLFile  string         `yaml:"dbUrlFile"`
	DBURLEnv   string         `yaml:"dbUrlEnv"`
	DBURL      *string        `yaml:"dbUrl"` // refused: a secret
	APIURL     string         `yaml:"apiUrl"`
	APIRealm   string         `yaml:"apiAuthRealm"`
	APIClient  string         `yaml:"apiClientId"`
	APISecretF string         `yaml:"apiClientSecretFile"`
	APISecretE string         `yaml:"apiClientSecretEnv"`
	APISecret  *string        `yaml:"apiClientSecret"` // refused
	APIUser    string         `yaml:"apiUsername"`
	APIPassF   string         `yaml:"apiPasswordFile"`
	APIPassE   string         `yaml:"apiPasswordEnv"`
	APIPass    *string        `yaml:"apiPassword"` // refused
	APITimeout *time.Duration `yaml:"apiTimeout"`

	From          string         `yaml:"from"`
	PollInterval  *time.Duration `yaml:"pollInterval"`
	Overlap       *time.Duration `yaml:"overlap"`
	AuditHorizon  *time.Duration `yaml:"auditHorizon"`
	PageSize      *int           `yaml:"pageSize"`
	PageBytes     *fileBytes     `yaml:"pageBytes"`
	MaxEventBytes *fileBytes     `yaml:"maxEventBytes"`
	BufferBytes   *fileBytes     `yaml:"bufferBytes"`

	Checkpoint      string         `yaml:"checkpoint"`
	Listen          *string        `yaml:"listen"`
	ShutdownTimeout *time.Duration `yaml:"shutdownTimeout"`
	LogLevel        string         `yaml:"logLevel"`
	LogFormat       string         `yaml:"logFormat"`

	Cluster        string  `yaml:"cluster"`
	StateSchema    string  `yaml:"stateSchema"`
	StateDBURLFile string  `yaml:"stateDbUrlFile"`
	StateDBURLEnv  string  `yaml:"stateDbUrlEnv"`
	StateDBURL     *string `yaml:"stateDbUrl"` // refused

	Routes []fileRoute `yaml:"routes"`
}

type fileRoute struct {
	Name    string      `yaml:"name"`
	Sink    *fileSink   `yaml:"sink"`
	Filters fileFilters `yaml:"filters"`

	Format             string         `yaml:"format"`
	Numbering          string         `yaml:"numbering"`
	Overflow           string         `yaml:"overflow"`
	Concurrency        *int           `yaml:"concurrency"`
	BufferCapacity     *int           `yaml:"bufferCapacity"`
	RetryWaitMin       *time.Duration `yaml:"retryWaitMin"`
	RetryWaitMax       *time.Duration `yaml:"retryWaitMax"`
	DeadLetterFile     string         `yaml:"deadLetterFile"`
	DeadLetterMaxBytes *fileBytes     `yaml:"deadLetterMaxBytes"`
}

// fileSink is the sink of a route: one of its keys.
type fileSink struct {
	HTTP  *fileHTTP  `yaml:"http"`
	Mail  *fileMail  `yaml:"mail"`
	Kafka *fileKafka `yaml:"kafka"`
	NATS  *fileNATS  `yaml:"nats"`
}

// fileMail is sink.mail: the keys of emitter.MailConfig, named as its
// flags without their mail prefix (--mailFrom: from); the server is
// host:port, its TLS mode the key tls.
type fileMail struct {
	Server          string         `yaml:"server"`
	TLS             string         `yaml:"tls"`
	CAFile          string         `yaml:"caFile"`
	Username        string         `yaml:"username"`
	PasswordFile    string         `yaml:"passwordFile"`
	PasswordEnv     string         `yaml:"passwordEnv"`
	Password        *string        `yaml:"password"` // refused
	Auth            string         `yaml:"auth"`
	From            string         `yaml:"from"`
	To              []string       `yaml:"to"`
	Zone            string         `yaml:"zone"`
	Types           []string       `yaml:"types"`
	DigestThreshold *int           `yaml:"digestThreshold"`
	DigestWindow    *time.Duration `yaml:"digestWindow"`
	Timeout         *time.Duration `yaml:"timeout"`
}

// fileKafka is sink.kafka: the keys of emitter.KafkaConfig, named as its
// flags without their kafka prefix (--kafkaSaslMechanism: saslMechanism).
type fileKafka struct {
	Brokers               []string       `yaml:"brokers"`
	Topic                 string         `yaml:"topic"`
	BatchSize             *int           `yaml:"batchSize"`
	Linger                *time.Duration `yaml:"linger"`
	MaxBytes              *fileBytes     `yaml:"maxBytes"`
	Compression           *string        `yaml:"compression"`
	DeliveryTimeout       *time.Duration `yaml:"deliveryTimeout"`
	SASLMechanism         string         `yaml:"saslMechanism"`
	Username              string         `yaml:"username"`
	PasswordFile          string         `yaml:"passwordFile"`
	PasswordEnv           string         `yaml:"passwordEnv"`
	Password              *string        `yaml:"password"` // refused
	OAuthTokenURL         string         `yaml:"oauthTokenUrl"`
	OAuthClientID         string         `yaml:"oauthClientId"`
	OAuthClientSecretFile string         `yaml:"oauthClientSecretFile"`
	OAuthClientSecretEnv  string         `yaml:"oauthClientSecretEnv"`
	OAuthClientSecret     *string        `yaml:"oauthClientSecret"` // refused
	TLS                   bool           `yaml:"tls"`
	CAFile                string         `yaml:"caFile"`
	ClientCertFile        string         `yaml:"clientCertFile"`
	ClientKeyFile         string         `yaml:"clientKeyFile"`
}

// fileNATS is sink.nats: the keys of emitter.NATSConfig, named as its
// flags without their nats prefix (--natsAckTimeout: ackTimeout).
type fileNATS struct {
	Servers        []string       `yaml:"servers"`
	Subject        string         `yaml:"subject"`
	BatchSize      *int           `yaml:"batchSize"`
	Linger         *time.Duration `yaml:"linger"`
	AckTimeout     *time.Duration `yaml:"ackTimeout"`
	Username       string         `yaml:"username"`
	PasswordFile   string         `yaml:"passwordFile"`
	PasswordEnv    string         `yaml:"passwordEnv"`
	Password       *string        `yaml:"password"` // refused
	TokenFile      string         `yaml:"tokenFile"`
	TokenEnv       string         `yaml:"tokenEnv"`
	Token          *string        `yaml:"token"` // refused
	CredsFile      string         `yaml:"credsFile"`
	CAFile         string         `yaml:"caFile"`
	ClientCertFile string         `yaml:"clientCertFile"`
	ClientKeyFile  string         `yaml:"clientKeyFile"`
}

type fileHTTP struct {
	URL                      string         `yaml:"url"`
	ConnectTimeout           *time.Duration `yaml:"connectTimeout"`
	ConnectionRequestTimeout *time.Duration `yaml:"connectionRequestTimeout"`
	SocketTimeout            *time.Duration `yaml:"socketTimeout"`
	RequestTimeout           *time.Duration `yaml:"requestTimeout"`
	DeadLetterStatuses       *[]int         `yaml:"deadLetterStatuses"`
	HoldStatuses             *[]int         `yaml:"holdStatuses"`

	Username           string      `yaml:"username"`
	PasswordFile       string      `yaml:"passwordFile"`
	PasswordEnv        string      `yaml:"passwordEnv"`
	Password           *string     `yaml:"password"` // refused
	SigningSecretsFile string      `yaml:"signingSecretsFile"`
	SigningSecretsEnv  string      `yaml:"signingSecretsEnv"`
	SigningSecrets     *[]string   `yaml:"signingSecrets"` // refused
	CAFile             string      `yaml:"caFile"`
	ClientCertFile     string      `yaml:"clientCertFile"`
	ClientKeyFile      string      `yaml:"clientKeyFile"`
	OAuth2             *fileOAuth2 `yaml:"oauth2"`
}

type fileOAuth2 struct {
	TokenURL         string   `yaml:"tokenUrl"`
	ClientID         string   `yaml:"clientId"`
	ClientSecretFile string   `yaml:"clientSecretFile"`
	ClientSecretEnv  string   `yaml:"clientSecretEnv"`
	ClientSecret     *string  `yaml:"clientSecret"` // refused
	Scopes           []string `yaml:"scopes"`
}

type fileFilters struct {
	Realms                 []string `yaml:"realms"`
	Kinds                  []string `yaml:"kinds"`
	EventTypes             []string `yaml:"eventTypes"`
	ExcludeEventTypes      []string `yaml:"excludeEventTypes"`
	AdminOperations        []string `yaml:"adminOperations"`
	ExcludeAdminOperations []string `yaml:"excludeAdminOperations"`
	AdminResources         []string `yaml:"adminResources"`
	ExcludeAdminResources  []string `yaml:"excludeAdminResources"`
	Clients                []string `yaml:"clients"`
	ExcludeClients         []string `yaml:"excludeClients"`
}

// configFile is a loaded configuration file: its settings and its syntax
// tree, to name the line of a key in messages.
type configFile struct {
	path string
	fc   fileConfig
	doc  *ast.File
}

// loadConfigFile reads and decodes the file at path. Its errors name the
// file, the line and the key.
func loadConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	f := &configFile{path: path}
	if f.doc, err = parser.ParseBytes(data, 0); err != nil {
		return nil, f.yamlError(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
	if err := dec.Decode(&f.fc); err != nil {
		return nil, f.yamlError(err)
	}
	return f, nil
}

// yamlError turns an error of the YAML library into one naming the file,
// the line and the column.
func (f *configFile) yamlError(err error) error {
	if tyErr, ok := errors.AsType[*yaml.TypeError](err); ok && tyErr.Token != nil {
		p := tyErr.Token.Position
		return fmt.Errorf("%s:%d:%d: %q: want %s", f.path, p.Line, p.Column, tyErr.Token.Value, kindOf(tyErr.DstType))
	}
	var te interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &te) && te.GetToken() != nil {
		p := te.GetToken().Position
		return fmt.Errorf("%s:%d:%d: %s", f.path, p.Line, p.Column, te.GetMessage())
	}
	return fmt.Errorf("%s: %w", f.path, err)
}

// kindOf names what a value of type t is written as in the file.
func kindOf(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 5s or 250ms"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list ([a, b])"
	case reflect.Struct, reflect.Map:
		return "a mapping (key: value)"
	}
	return t.String()
}

// keyError is an error about the value of key (a path such as
// routes[1].sink.http.url), named by the key's line in the file.
func (f *configFile) keyError(key string, err error) error {
	return fmt.Errorf("%s: %w", f.where(key), err)
}

// where names the place of key in the file: file:line:column (of the key,
// or of the nearest enclosing key present when key itself is absent).
func (f *configFile) where(key string) string {
	for k := key; k != ""; k = parentKey(k) {
		for _, try := range []string{k, k + "File", k + "Env"} {
			if pos := f.position(try); pos != nil {
				return fmt.Sprintf("%s:%d:%d", f.path, pos.Line, pos.Column)
			}
		}
	}
	return f.path
}

// parentKey returns the key enclosing key: routes[1].sink for
// routes[1].sink.url, routes[1] for routes[1].name, "" at the top.
func parentKey(key string) string {
	if i := strings.LastIndexAny(key, ".["); i > 0 {
		return key[:i]
	}
	return ""
}

var keyPart = regexp.MustCompile(`([A-Za-z0-9_]+)|\[(\d+)\]`)

// position returns the position of key in the file, nil when absent.
func (f *configFile) position(key string) *token.Position {
	if len(f.doc.Docs) == 0 || f.doc.Docs[0].Body == nil {
		return nil
	}
	node := f.doc.Docs[0].Body
	var at *token.Position
	for _, m := range keyPart.FindAllStringSubmatch(key, -1) {
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			seq, ok := node.(*ast.SequenceNode)
			if !ok || i >= len(seq.Values) {
				return nil
			}
			node = seq.Values[i]
			at = node.GetToken().Position
			switch n := node.(type) { // a mapping's own token is its first ':'
			case *ast.MappingNode:
				if len(n.Values) > 0 {
					at = n.Values[0].Key.GetToken().Position
				}
			case *ast.MappingValueNode:
				at = n.Key.GetToken().Position
			}
			continue
		}
		var values []*ast.MappingValueNode
		switch n := node.(type) {
		case *ast.MappingNode:
			values = n.Values
		case *ast.MappingValueNode:
			values = []*ast.MappingValueNode{n}
		default:
			return nil
		}
		found := false
		for _, v := range values {
			if v.Key.GetToken().Value == m[1] {
				node, at, found = v.Value, v.Key.GetToken().Position, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return at
}

// secretRef reads the secret that a pair of keys names: key+"File" (a file
// holding it) or key+"Env" (an environment variable holding it), not both.
// A set reference to nothing (a missing file, an unset variable) is an
// error: the route would otherwise run without its credentials.
func (f *configFile) secretRef(getenv func(string) string, key, file, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", f.keyError(key+"File", fmt.Errorf("%sFile and %sEnv: set one", lastKey(key), lastKey(key)))
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", f.keyError(key+"File", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case env != "":
		v := getenv(env)
		if v == "" {
			return "", f.keyError(key+"Env", fmt.Errorf("%sEnv: the environment variable %s is not set", lastKey(key), env))
		}
		return v, nil
	}
	return "", nil
}

func lastKey(key string) string {
	if i := strings.LastIndexAny(key, ".]"); i >= 0 {
		return key[i+1:]
	}
	return key
}

// inline refuses a secret written in the file.
func (f *configFile) inline(key string, set bool) error {
	if !set {
		return nil
	}
	return f.keyError(key, fmt.Errorf("%s: a secret is never written in the file: use %sFile (a file holding it) or %sEnv (an environment variable holding it)",
		lastKey(key), lastKey(key), lastKey(key)))
}

// apply sets the global settings of the file on c (over the defaults),
// reading the secrets it refers to, and its routes.
func (f *configFile) apply(c *emitter.Config, getenv func(string) string) error {
	fc := f.fc
	for _, in := range []struct {
		key string
		set bool
	}{
		{"dbUrl", fc.DBURL != nil}, {"apiClientSecret", fc.APISecret != nil}, {"apiPassword", fc.APIPass != nil},
		{"stateDbUrl", fc.StateDBURL != nil},
	} {
		if err := f.inline(in.key, in.set); err != nil {
			return err
		}
	}
	if fc.KeycloakID != nil {
		c.KeycloakID = *fc.KeycloakID
	}
	if fc.DatacenterID != nil {
		c.DatacenterID = *fc.DatacenterID
	}
	if fc.Source != "" {
		if err := c.Source.UnmarshalText([]byte(fc.Source)); err != nil {
			return f.keyError("source", err)
		}
	}
	setStr(&c.API.URL, fc.APIURL)
	setStr(&c.API.AuthRealm, fc.APIRealm)
	setStr(&c.API.ClientID, fc.APIClient)
	setStr(&c.API.Username, fc.APIUser)
	setStr(&c.From, fc.From)
	setStr(&c.CheckpointPath, fc.Checkpoint)
	setStr(&c.Cluster, fc.Cluster)
	setStr(&c.StateSchema, fc.StateSchema)
	setPtr(&c.API.Timeout, fc.APITimeout)
	setPtr(&c.PollInterval, fc.PollInterval)
	setPtr(&c.Overlap, fc.Overlap)
	setPtr(&c.AuditHorizon, fc.AuditHorizon)
	setPtr(&c.PageSize, fc.PageSize)
	for _, b := range []struct {
		dst *int64
		key string
		v   *fileBytes
	}{{&c.PageBytes, "pageBytes", fc.PageBytes}, {&c.MaxEventBytes, "maxEventBytes", fc.MaxEventBytes}, {&c.BufferBytes, "bufferBytes", fc.BufferBytes}} {
		if err := f.setBytes(b.dst, b.key, b.v); err != nil {
			return err
		}
	}
	setPtr(&c.ListenAddr, fc.Listen)
	setPtr(&c.ShutdownTimeout, fc.ShutdownTimeout)
	var err error
	for _, s := range []struct {
		dst       *string
		key       string
		file, env string
	}{
		{&c.DatabaseURL, "dbUrl", fc.DBURLFile, fc.DBURLEnv},
		{&c.API.ClientSecret, "apiClientSecret", fc.APISecretF, fc.APISecretE},
		{&c.API.Password, "apiPassword", fc.APIPassF, fc.APIPassE},
		{&c.StateDatabaseURL, "stateDbUrl", fc.StateDBURLFile, fc.StateDBURLEnv},
	} {
		v, err := f.secretRef(getenv, s.key, s.file, s.env)
		if err != nil {
			return err
		}
		setStr(s.dst, v)
	}
	if len(fc.Routes) == 0 {
		return f.keyError("routes", errors.New("routes: missing: the file declares no route (a list of name, sink, filters, ...)"))
	}
	c.Routes = make([]emitter.Route, len(fc.Routes))
	for i, fr := range fc.Routes {
		if c.Routes[i], err = f.route(i, fr, getenv); err != nil {
			return err
		}
	}
	return nil
}

// route turns the file's route i into an emitter.Route over the defaults
// of a route.
func (f *configFile) route(i int, fr fileRoute, getenv func(string) string) (emitter.Route, error) {
	key := func(k string) string { return fmt.Sprintf("routes[%d].%s", i, k) }
	r := emitter.DefaultRoute(fr.Name)
	r.Format = emitter.Format(fr.Format)
	setStr((*string)(&r.Numbering), fr.Numbering)
	if fr.Overflow != "" {
		if err := r.Overflow.UnmarshalText([]byte(fr.Overflow)); err != nil {
			return r, f.keyError(key("overflow"), &emitter.FieldError{Field: key("overflow"), Value: fr.Overflow, Err: errors.New("want drop-oldest or block")})
		}
	}
	setPtr(&r.Concurrency, fr.Concurrency)
	setPtr(&r.BufferCapacity, fr.BufferCapacity)
	setPtr(&r.RetryWaitMin, fr.RetryWaitMin)
	setPtr(&r.RetryWaitMax, fr.RetryWaitMax)
	setStr(&r.DeadLetterPath, fr.DeadLetterFile)
	if err := f.setBytes(&r.DeadLetterMaxBytes, key("deadLetterMaxBytes"), fr.DeadLetterMaxBytes); err != nil {
		return r, err
	}

	ff := fr.Filters
	r.Realms = ff.Realms
	for _, k := range ff.Kinds {
		r.Kinds = append(r.Kinds, emitter.Kind(k))
	}
	r.Filters = emitter.Filters{
		EventTypes: emitter.TypeFilter{Include: ff.EventTypes, Exclude: ff.ExcludeEventTypes},
		Operations: emitter.TypeFilter{Include: ff.AdminOperations, Exclude: ff.ExcludeAdminOperations},
		Resources:  emitter.TypeFilter{Include: ff.AdminResources, Exclude: ff.ExcludeAdminResources},
		Clients:    emitter.TypeFilter{Include: ff.Clients, Exclude: ff.ExcludeClients},
	}
	if fr.Sink == nil {
		return r, nil // Validate names the missing sink
	}
	var err error
	if r.Sink.Mail, err = f.mailSink(key("sink.mail."), fr.Sink.Mail, getenv); err != nil {
		return r, err
	}
	if r.Sink.Mail != nil && fr.Format != "" {
		return r, f.keyError(key("format"), &emitter.FieldError{Field: key("format"), Value: fr.Format,
			Err: errors.New("a mail route sends plain-text mails: drop format")})
	}
	if r.Sink.Kafka, err = f.kafkaSink(key("sink.kafka."), fr.Sink.Kafka, getenv); err != nil {
		return r, err
	}
	if r.Sink.NATS, err = f.natsSink(key("sink.nats."), fr.Sink.NATS, getenv); err != nil {
		return r, err
	}
	if h := fr.Sink.HTTP; h != nil {
		hk := func(k string) string { return key("sink.http." + k) }
		def := emitter.DefaultConfig()
		s := &emitter.HTTPSink{
			URL: h.URL, ConnectTimeout: def.ConnectTimeout, ConnectionRequestTimeout: def.ConnectionRequestTimeout,
			SocketTimeout: def.SocketTimeout, RequestTimeout: def.RequestTimeout,
			DeadLetterStatuses: def.DeadLetterStatuses, HoldStatuses: def.HoldStatuses,
			Username: h.Username, CAFile: h.CAFile, ClientCertFile: h.ClientCertFile, ClientKeyFile: h.ClientKeyFile,
		}
		setPtr(&s.ConnectTimeout, h.ConnectTimeout)
		setPtr(&s.ConnectionRequestTimeout, h.ConnectionRequestTimeout)
		setPtr(&s.SocketTimeout, h.SocketTimeout)
		setPtr(&s.RequestTimeout, h.RequestTimeout)
		setPtr(&s.DeadLetterStatuses, h.DeadLetterStatuses)
		setPtr(&s.HoldStatuses, h.HoldStatuses)
		if err := f.inline(hk("password"), h.Password != nil); err != nil {
			return r, err
		}
		if err := f.inline(hk("signingSecrets"), h.SigningSecrets != nil); err != nil {
			return r, err
		}
		if s.Password, err = f.secretRef(getenv, hk("password"), h.PasswordFile, h.PasswordEnv); err != nil {
			return r, err
		}
		sigs, err := f.secretRef(getenv, hk("signingSecrets"), h.SigningSecretsFile, h.SigningSecretsEnv)
		if err != nil {
			return r, err
		}
		if sigs != "" {
			s.SigningSecrets = strings.Fields(sigs)
		}
		if o := h.OAuth2; o != nil {
			if err := f.inline(hk("oauth2.clientSecret"), o.ClientSecret != nil); err != nil {
				return r, err
			}
			s.OAuth2 = emitter.OAuth2Config{TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: o.Scopes}
			if s.OAuth2.ClientSecret, err = f.secretRef(getenv, hk("oauth2.clientSecret"), o.ClientSecretFile, o.ClientSecretEnv); err != nil {
				return r, err
			}
		}
		r.Sink.HTTP = s
	}
	return r, nil
}

// secret is a secret of a sink: its key (prefix+name), whether it is
// written in the file (refused), the file and the variable naming it, and
// where it goes.
type secret struct {
	name      string
	inline    bool
	file, env string
	dst       *string
}

// secrets refuses the secrets written in the file and reads those it
// refers to; prefix is the key of their sink (routes[0].sink.mail.).
func (f *configFile) secrets(prefix string, getenv func(string) string, ss ...secret) error {
	for _, s := range ss {
		if err := f.inline(prefix+s.name, s.inline); err != nil {
			return err
		}
		v, err := f.secretRef(getenv, prefix+s.name, s.file, s.env)
		if err != nil {
			return err
		}
		*s.dst = v
	}
	return nil
}

// mailSink turns sink.mail (prefix is its key) into the settings of the
// mail sink over their defaults; nil when m is.
func (f *configFile) mailSink(prefix string, m *fileMail, getenv func(string) string) (*emitter.MailConfig, error) {
	if m == nil {
		return nil, nil
	}
	s := emitter.DefaultConfig().Mail
	s.Server, s.CAFile, s.Username, s.From, s.To, s.Zone = m.Server, m.CAFile, m.Username, m.From, m.To, m.Zone
	setStr((*string)(&s.TLS), m.TLS)
	setStr(&s.Auth, m.Auth)
	if m.Types != nil {
		s.Types = m.Types
	}
	setPtr(&s.DigestThreshold, m.DigestThreshold)
	setPtr(&s.DigestWindow, m.DigestWindow)
	setPtr(&s.Timeout, m.Timeout)
	return &s, f.secrets(prefix, getenv, secret{"password", m.Password != nil, m.PasswordFile, m.PasswordEnv, &s.Password})
}

// kafkaSink turns sink.kafka into the settings of the Kafka sink over
// their defaults; nil when k is.
func (f *configFile) kafkaSink(prefix string, k *fileKafka, getenv func(string) string) (*emitter.KafkaConfig, error) {
	if k == nil {
		return nil, nil
	}
	s := emitter.DefaultConfig().Kafka
	s.Brokers, s.Topic, s.SASLMechanism, s.Username = k.Brokers, k.Topic, k.SASLMechanism, k.Username
	s.OAuthTokenURL, s.OAuthClientID = k.OAuthTokenURL, k.OAuthClientID
	s.TLS, s.CAFile, s.ClientCertFile, s.ClientKeyFile = k.TLS, k.CAFile, k.ClientCertFile, k.ClientKeyFile
	setPtr(&s.BatchSize, k.BatchSize)
	setPtr(&s.Linger, k.Linger)
	var maxBytes int64
	if err := f.setBytes(&maxBytes, prefix+".maxBytes", k.MaxBytes); err != nil {
		return nil, err
	}
	if k.MaxBytes != nil {
		s.MaxBytes = int32(min(maxBytes, 1<<30)) // as --kafkaMaxBytes
	}
	setPtr(&s.Compression, k.Compression)
	setPtr(&s.DeliveryTimeout, k.DeliveryTimeout)
	return &s, f.secrets(prefix, getenv,
		secret{"password", k.Password != nil, k.PasswordFile, k.PasswordEnv, &s.Password},
		secret{"oauthClientSecret", k.OAuthClientSecret != nil, k.OAuthClientSecretFile, k.OAuthClientSecretEnv, &s.OAuthClientSecret})
}

// natsSink turns sink.nats into the settings of the NATS sink over their
// defaults; nil when n is.
func (f *configFile) natsSink(prefix string, n *fileNATS, getenv func(string) string) (*emitter.NATSConfig, error) {
	if n == nil {
		return nil, nil
	}
	s := emitter.DefaultConfig().NATS
	s.Servers, s.Subject, s.Username, s.CredsFile = n.Servers, n.Subject, n.Username, n.CredsFile
	s.CAFile, s.ClientCertFile, s.ClientKeyFile = n.CAFile, n.ClientCertFile, n.ClientKeyFile
	setPtr(&s.BatchSize, n.BatchSize)
	setPtr(&s.Linger, n.Linger)
	setPtr(&s.AckTimeout, n.AckTimeout)
	return &s, f.secrets(prefix, getenv,
		secret{"password", n.Password != nil, n.PasswordFile, n.PasswordEnv, &s.Password},
		secret{"token", n.Token != nil, n.TokenFile, n.TokenEnv, &s.Token})
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// fileBytes is a size written in the file (16MiB, 16777216), read by
// envflag.ParseBytes when the file is applied, so that a bad one is named
// by its key's line.
type fileBytes string

func (b *fileBytes) UnmarshalText(text []byte) error {
	*b = fileBytes(text)
	return nil
}

// setBytes sets *dst to the size v of key, when the file gives one.
func (f *configFile) setBytes(dst *int64, key string, v *fileBytes) error {
	if v == nil {
		return nil
	}
	n, err := envflag.ParseBytes(string(*v))
	if err != nil {
		return f.keyError(key, fmt.Errorf("%s: %w", key, err))
	}
	*dst = n
	return nil
}

func setPtr[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// routeKey matches the field of a FieldError about a file's route.
var routeKey = regexp.MustCompile(`^routes\[\d+\]`)

// fileFieldError names, for a FieldError of Config.Validate about a
// setting of the file, the file, the line and the key; it returns nil when
// err is not about the file (a flag's value).
func (f *configFile) fileFieldError(err error, set map[string]bool) error {
	var fe *emitter.FieldError
	if !errors.As(err, &fe) {
		return nil
	}
	if routeKey.MatchString(fe.Field) {
		return f.keyError(fe.Field, err)
	}
	if !set[fe.Field] && (f.position(fe.Field) != nil || f.position(fe.Field+"File") != nil || f.position(fe.Field+"Env") != nil) {
		return f.keyError(fe.Field, err)
	}
	return nil
}
