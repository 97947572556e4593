package scram

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/imppd/imppd/core"
)

// Sentinel errors; match with errors.Is.
var (
	// ErrMalformed: the client message violates RFC 5802 §7 (RFC 6120
	// malformed-request).
	ErrMalformed = errors.New("scram: malformed message")
	// ErrNotAuthorized: wrong proof, unknown user or authzid mismatch (RFC 6120
	// not-authorized).
	ErrNotAuthorized = errors.New("scram: not authorized")
	// ErrChannelBinding: channel binding missing, unsupported, downgraded or
	// not matching (RFC 5802 §6); report it as not-authorized.
	ErrChannelBinding = errors.New("scram: channel binding failure")
)

// Channel binding types (RFC 9266, RFC 5929 §4).
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

const (
	exporterLabel    = "EXPORTER-Channel-Binding" // RFC 9266 §2
	exporterLen      = 32
	serverNonceBytes = 18
	maxMessage       = 4096 // bytes per client message
	maxNonce         = 512  // bytes of client nonce
	defaultDecoyIter = 4096
	suffixPlus       = "-PLUS"
)

// Lookup returns the credentials of username for hash ("SHA-1", "SHA-256",
// "SHA-512"). username is already unescaped (=2C, =3D, RFC 5802 §5.1) but
// not otherwise normalized.
type Lookup func(username, hash string) (core.Credentials, bool)

// Result receives the outcome of a successful exchange.
type Result struct {
	Username string // authcid as sent, unescaped
}

// Options configure a server mechanism.
type Options struct {
	Lookup Lookup
	// ServerCertDER is the leaf certificate, for tls-server-end-point.
	ServerCertDER []byte
	// PlusAdvertised: the server offers -PLUS variants, so gs2 flag 'y' is a
	// downgrade and fails (RFC 5802 §6).
	PlusAdvertised bool
	// Domain, if set, lets authzid be the bare JID username@Domain (RFC 6120
	// §6.3.8). Otherwise a non-empty authzid must equal the username.
	Domain string
	// DecoyIterations is the iteration count shown for unknown users; set it
	// to the count used for real users (0 means 4096).
	DecoyIterations int

	nonce func() string // test hook: server nonce part
}

// Names lists the mechanism names in preference order, strongest first; with
// plus, the -PLUS variants come first.
func Names(plus bool) []string {
	var out []string
	if plus {
		for _, h := range hashes {
			out = append(out, "SCRAM-"+h.name+suffixPlus)
		}
	}
	for _, h := range hashes {
		out = append(out, "SCRAM-"+h.name)
	}
	return out
}

// ChannelBindingTypes lists the channel binding types a -PLUS mechanism can
// use on this connection, for XEP-0440: tls-exporter on TLS 1.3 or TLS 1.2
// with Extended Master Secret (RFC 9266 §3), tls-server-end-point when the
// server certificate serverCertDER is given and has a defined hash (RFC 5929
// §4.1).
func ChannelBindingTypes(state *tls.ConnectionState, serverCertDER []byte) []string {
	var out []string
	if _, err := channelBindingData(TLSExporter, state, nil); err == nil {
		out = append(out, TLSExporter)
	}
	if _, err := channelBindingData(TLSServerEndPoint, state, serverCertDER); err == nil {
		out = append(out, TLSServerEndPoint)
	}
	return out
}

// Mechanism returns the server side of SCRAM-SHA-1, SCRAM-SHA-256,
// SCRAM-SHA-512 or their -PLUS variants; ok is false for other names. Use a
// new value per authentication attempt: res is filled on success.
func Mechanism(name string, opts Options, res *Result) (m sasl.Mechanism, ok bool) {
	hn, plus := strings.CutSuffix(name, suffixPlus)
	hn, found := strings.CutPrefix(hn, "SCRAM-")
	if !found {
		return sasl.Mechanism{}, false
	}
	h, ok := hashByName(hn)
	if !ok {
		return sasl.Mechanism{}, false
	}
	s := &server{h: h, plus: plus, opts: opts, res: res}
	return sasl.Mechanism{
		Name: name,
		Start: func(*sasl.Negotiator) (bool, []byte, any, error) {
			return false, nil, nil, errors.New("scram: server-side mechanism used as a client")
		},
		Next: s.next,
	}, true
}

type server struct {
	h    hashFunc
	plus bool
	opts Options
	res  *Result
}

// awaitingFirst: an empty challenge was sent, client-first is due.
type awaitingFirst struct{}

// exchange is the state kept between the two client messages.
type exchange struct {
	done        bool
	username    string
	cred        core.Credentials
	decoy       bool
	cbind       []byte // expected decoded c= value: gs2 header + cb data
	nonce       string // client nonce + server nonce
	clientBare  string
	serverFirst string
}

func (s *server) next(n *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
	if n.State()&sasl.Receiving == 0 {
		return false, nil, nil, errors.New("scram: server-side mechanism used as a client")
	}
	switch x := data.(type) {
	case nil:
		if len(challenge) == 0 {
			// No initial response: send an empty challenge (RFC 6120 §6.4.2).
			return true, nil, awaitingFirst{}, nil
		}
		return s.first(n, challenge)
	case awaitingFirst:
		return s.first(n, challenge)
	case *exchange:
		if x.done {
			return false, nil, nil, fmt.Errorf("%w: exchange already complete", ErrMalformed)
		}
		x.done = true
		return s.final(x, challenge)
	default:
		return false, nil, nil, fmt.Errorf("%w: unexpected state", ErrMalformed)
	}
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

// checkText enforces the size limit and the UTF8-char without NUL rule of
// RFC 5802 §7.
func checkText(msg []byte) error {
	switch {
	case len(msg) == 0:
		return malformed("empty message")
	case len(msg) > maxMessage:
		return malformed("message too long")
	case !utf8.Valid(msg):
		return malformed("invalid UTF-8")
	case bytes.IndexByte(msg, 0) >= 0:
		return malformed("NUL byte")
	}
	return nil
}

// first handles client-first-message and returns server-first-message
// (RFC 5802 §5.1, §7).
func (s *server) first(n *sasl.Negotiator, challenge []byte) (bool, []byte, any, error) {
	if err := checkText(challenge); err != nil {
		return false, nil, nil, err
	}
	msg := string(challenge)

	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok1 := strings.Cut(msg, ",")
	authzField, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return false, nil, nil, malformed("truncated gs2 header")
	}
	gs2Header := msg[:len(msg)-len(bare)]

	var cbType string
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		cbType = flag[2:]
		if !validCBName(cbType) {
			return false, nil, nil, malformed("bad cb-name")
		}
	default:
		return false, nil, nil, malformed("bad gs2-cbind-flag")
	}

	var authzid string
	if authzField != "" {
		v, ok := strings.CutPrefix(authzField, "a=")
		if !ok {
			return false, nil, nil, malformed("bad authzid")
		}
		var err error
		if authzid, err = unescapeName(v); err != nil {
			return false, nil, nil, err
		}
	}

	// client-first-message-bare = [reserved-mext ","] username "," nonce
	// ["," extensions]
	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return false, nil, nil, malformed("reserved m= attribute") // RFC 5802 §5.1
	}
	if len(fields) < 2 {
		return false, nil, nil, malformed("missing attributes")
	}
	v, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return false, nil, nil, malformed("missing n=")
	}
	username, err := unescapeName(v)
	if err != nil {
		return false, nil, nil, err
	}
	cnonce, ok := strings.CutPrefix(fields[1], "r=")
	if !ok {
		return false, nil, nil, malformed("missing r=")
	}
	if !validNonce(cnonce) {
		return false, nil, nil, malformed("bad nonce")
	}
	if err := checkExtensions(fields[2:]); err != nil {
		return false, nil, nil, err
	}

	// Channel binding negotiation (RFC 5802 §6).
	var cbData []byte
	switch {
	case s.plus && cbType == "":
		return false, nil, nil, fmt.Errorf("%w: -PLUS mechanism without channel binding", ErrChannelBinding)
	case s.plus:
		if cbData, err = channelBindingData(cbType, n.TLSState(), s.opts.ServerCertDER); err != nil {
			return false, nil, nil, err
		}
	case cbType != "":
		return false, nil, nil, fmt.Errorf("%w: channel binding requested with a non-PLUS mechanism", ErrChannelBinding)
	case flag == "y" && s.opts.PlusAdvertised:
		return false, nil, nil, fmt.Errorf("%w: client claims no server support for channel binding (downgrade)", ErrChannelBinding)
	}

	if authzid != "" && !s.authzOK(authzid, username) {
		return false, nil, nil, fmt.Errorf("%w: authzid %q is not %q", ErrNotAuthorized, authzid, username)
	}

	x := &exchange{
		username:   username,
		cbind:      append([]byte(gs2Header), cbData...),
		clientBare: bare,
	}
	var cred core.Credentials
	found := false
	if s.opts.Lookup != nil {
		cred, found = s.opts.Lookup(username, s.h.name)
	}
	if found && validCred(s.h, cred) {
		x.cred = cred
	} else {
		x.decoy = true
		x.cred = s.decoy(username)
	}

	snonce := ""
	if s.opts.nonce != nil {
		snonce = s.opts.nonce()
	} else {
		b := make([]byte, serverNonceBytes)
		rand.Read(b)
		snonce = base64.StdEncoding.EncodeToString(b)
	}
	x.nonce = cnonce + snonce
	x.serverFirst = "r=" + x.nonce +
		",s=" + base64.StdEncoding.EncodeToString(x.cred.Salt) +
		",i=" + strconv.Itoa(x.cred.Iterations)
	return true, []byte(x.serverFirst), x, nil
}

// final handles client-final-message and returns server-final-message
// (RFC 5802 §5.1, §7).
func (s *server) final(x *exchange, challenge []byte) (bool, []byte, any, error) {
	if err := checkText(challenge); err != nil {
		return false, nil, x, err
	}
	msg := string(challenge)

	// client-final-message = client-final-message-without-proof "," proof
	i := strings.LastIndexByte(msg, ',')
	if i < 0 {
		return false, nil, x, malformed("missing attributes")
	}
	withoutProof := msg[:i]
	p, ok := strings.CutPrefix(msg[i+1:], "p=")
	if !ok {
		return false, nil, x, malformed("missing p= as last attribute")
	}
	fields := strings.Split(withoutProof, ",")
	if len(fields) < 2 {
		return false, nil, x, malformed("missing attributes")
	}
	c, ok1 := strings.CutPrefix(fields[0], "c=")
	r, ok2 := strings.CutPrefix(fields[1], "r=")
	if !ok1 || !ok2 {
		return false, nil, x, malformed("expected c= and r=")
	}
	if err := checkExtensions(fields[2:]); err != nil {
		return false, nil, x, err
	}
	cbind, err := base64.StdEncoding.Strict().DecodeString(c)
	if err != nil || len(cbind) == 0 {
		return false, nil, x, malformed("bad c= value")
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(p)
	if err != nil || len(proof) != s.h.size {
		return false, nil, x, malformed("bad p= value")
	}

	if !hmac.Equal(cbind, x.cbind) {
		return false, nil, x, fmt.Errorf("%w: c= does not match", ErrChannelBinding)
	}
	if r != x.nonce {
		return false, nil, x, fmt.Errorf("%w: nonce does not match", ErrNotAuthorized)
	}

	// RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
	// accept when H(ClientKey) == StoredKey.
	authMessage := []byte(x.clientBare + "," + x.serverFirst + "," + withoutProof)
	clientSig := hmacSum(s.h, x.cred.StoredKey, authMessage)
	clientKey := make([]byte, s.h.size)
	subtle.XORBytes(clientKey, proof, clientSig)
	match := subtle.ConstantTimeCompare(hashSum(s.h, clientKey), x.cred.StoredKey) == 1
	if !match || x.decoy {
		return false, nil, x, fmt.Errorf("%w: invalid proof for %q", ErrNotAuthorized, x.username)
	}
	serverSig := hmacSum(s.h, x.cred.ServerKey, authMessage)
	if s.res != nil {
		s.res.Username = x.username
	}
	return false, []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), x, nil
}

// authzOK: authzid must name the authenticated account (RFC 6120 §6.3.8).
func (s *server) authzOK(authzid, username string) bool {
	if s.opts.Domain == "" {
		return authzid == username
	}
	got, err := jid.Parse(authzid)
	if err != nil {
		return false
	}
	want, err := jid.New(username, s.opts.Domain, "")
	if err != nil {
		return false
	}
	return got.Equal(want)
}

func validCred(h hashFunc, c core.Credentials) bool {
	return c.Hash == h.name && c.Iterations >= 1 && len(c.Salt) > 0 &&
		len(c.StoredKey) == h.size && len(c.ServerKey) == h.size
}

var decoySecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// decoy returns stable fake credentials for an unknown user so that the
// server-first-message does not reveal whether the user exists (RFC 5802 §9).
func (s *server) decoy(username string) core.Credentials {
	m := hmac.New(sha256.New, decoySecret())
	m.Write([]byte(s.h.name))
	m.Write([]byte{0})
	m.Write([]byte(username))
	sum := m.Sum(nil)
	iter := s.opts.DecoyIterations
	if iter < 1 {
		iter = defaultDecoyIter
	}
	return core.Credentials{
		Hash:       s.h.name,
		Salt:       sum[:saltLen],
		Iterations: iter,
		StoredKey:  make([]byte, s.h.size),
		ServerKey:  make([]byte, s.h.size),
	}
}

// unescapeName decodes saslname (RFC 5802 §5.1, §7): "=2C" is ',', "=3D" is
// '=', any other '=' is an error.
func unescapeName(v string) (string, error) {
	if v == "" {
		return "", malformed("empty saslname")
	}
	if !strings.Contains(v, "=") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '=' {
			b.WriteByte(v[i])
			continue
		}
		switch {
		case strings.HasPrefix(v[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(v[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", malformed("bad escape in saslname")
		}
		i += 2
	}
	return b.String(), nil
}

// validNonce: printable = %x21-2B / %x2D-7E (RFC 5802 §7).
func validNonce(v string) bool {
	if v == "" || len(v) > maxNonce {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 §7).
func validCBName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkExtensions: extensions = attr-val *("," attr-val), attr-val = ALPHA
// "=" value (RFC 5802 §7). Unknown extensions are ignored.
func checkExtensions(fields []string) error {
	for _, f := range fields {
		if len(f) < 3 || f[1] != '=' || !(f[0] >= 'a' && f[0] <= 'z' || f[0] >= 'A' && f[0] <= 'Z') {
			return malformed("bad extension attribute")
		}
	}
	return nil
}

// channelBindingData returns the channel binding data of type typ (RFC 9266
// §2, RFC 5929 §4.1).
func channelBindingData(typ string, state *tls.ConnectionState, certDER []byte) ([]byte, error) {
	if state == nil || !state.HandshakeComplete {
		return nil, fmt.Errorf("%w: no TLS", ErrChannelBinding)
	}
	switch typ {
	case TLSExporter:
		// Fails on TLS 1.2 without Extended Master Secret (RFC 9266 §3).
		b, err := state.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
		if err != nil {
			return nil, fmt.Errorf("%w: tls-exporter: %v", ErrChannelBinding, err)
		}
		return b, nil
	case TLSServerEndPoint:
		if len(certDER) == 0 {
			return nil, fmt.Errorf("%w: tls-server-end-point: no certificate configured", ErrChannelBinding)
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, fmt.Errorf("%w: tls-server-end-point: %v", ErrChannelBinding, err)
		}
		newHash := endPointHash(cert.SignatureAlgorithm)
		if newHash == nil {
			return nil, fmt.Errorf("%w: tls-server-end-point undefined for %v", ErrChannelBinding, cert.SignatureAlgorithm)
		}
		d := newHash()
		d.Write(certDER)
		return d.Sum(nil), nil
	default:
		return nil, fmt.Errorf("%w: unsupported type %q", ErrChannelBinding, typ)
	}
}

// endPointHash picks the certificate's signature hash, with MD5 and SHA-1
// replaced by SHA-256 (RFC 5929 §4.1); nil when there is no single hash.
func endPointHash(alg x509.SignatureAlgorithm) func() hash.Hash {
	switch alg {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		return sha256.New
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		return sha512.New384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		return sha512.New
	}
	return nil
}
