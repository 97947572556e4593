package xmppmap

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strings"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap/scram"
)

// negotiate runs RFC 6120 stream negotiation: STARTTLS (§5), SASL (§6) and
// resource binding (§7), each step restarting the stream as the RFC says.
// It returns once a resource is bound.
func (ss *session) negotiate() error {
	ss.reset(ss.srv.cfg.MaxPreauthSize)
	for {
		if err := ss.openStream(); err != nil {
			return err
		}
		if !ss.secure && ss.srv.cfg.TLS != nil && ss.authed == "" {
			done, err := ss.negotiateTLS()
			if err != nil {
				return err
			}
			if done {
				continue
			}
			// The client skipped optional TLS and sent <auth/>.
		}
		if ss.authed == "" {
			if err := ss.negotiateSASL(); err != nil {
				return err
			}
			ss.reset(ss.srv.cfg.MaxStanzaSize)
			continue
		}
		return ss.negotiateBind()
	}
}

// openStream reads the client's header and answers with ours and the
// features the current stage offers.
func (ss *session) openStream() error {
	h, err := readHeader(ss.dec)
	if err != nil {
		return err
	}
	d, err := jid.Parse(h.to)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" || !ss.srv.domains[d.Domainpart()] {
		return streamError(stream.HostUnknown, "this server does not serve "+h.to)
	}
	if ss.domain != "" && d.Domainpart() != ss.domain {
		return streamError(stream.HostUnknown, "the stream restarted for another domain")
	}
	id := newStreamID()
	// closeWith reads these from other goroutines (shutdown, conflicts).
	ss.wmu.Lock()
	ss.domain, ss.lang, ss.streamID = d.Domainpart(), h.lang, id
	ss.nsScope = h.scope
	ss.wmu.Unlock()
	// RFC 6120 §4.7.2: answer to the 'from' the client gave, if valid.
	to := ""
	if f, err := jid.Parse(h.from); err == nil && h.from != "" {
		to = f.Bare().String()
	}
	b := appendHeader(nil, id, ss.domain, to, h.lang)
	b = ss.appendFeatures(b)
	if !ss.send(b) {
		return errClosed
	}
	return nil
}

func (ss *session) tlsRequired() bool { return ss.srv.cfg.RequireTLS && !ss.secure }

// mechanisms lists the SASL mechanisms offered now, strongest first
// (RFC 6120 §6.4.1). PLAIN never appears outside TLS.
func (ss *session) mechanisms() []string {
	if ss.tlsRequired() {
		return nil
	}
	m := scram.Names(ss.secure && ss.tlsState != nil)
	if ss.secure && ss.srv.cfg.AllowPlain {
		m = append(m, "PLAIN")
	}
	return m
}

func (ss *session) appendFeatures(b []byte) []byte {
	b = append(b, "<stream:features>"...)
	switch {
	case !ss.secure && ss.srv.cfg.TLS != nil && ss.authed == "":
		b = append(b, "<starttls xmlns='"+nsTLS+"'>"...)
		if ss.srv.cfg.RequireTLS {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
		if ss.srv.cfg.RequireTLS {
			break
		}
		fallthrough
	case ss.authed == "":
		b = append(b, "<mechanisms xmlns='"+nsSASL+"'>"...)
		for _, m := range ss.mechanisms() {
			b = append(b, "<mechanism>"+m+"</mechanism>"...)
		}
		b = append(b, "</mechanisms>"...)
		if !ss.tlsRequired() {
			for _, f := range ss.srv.preauthFeatures {
				b = append(b, f...)
			}
		}
		if ss.tlsState != nil {
			// XEP-0440: the channel-binding types the -PLUS mechanisms take.
			b = append(b, "<sasl-channel-binding xmlns='"+nsSASLCB+"'>"...)
			for _, t := range scram.ChannelBindingTypes(ss.tlsState, ss.srv.certDER) {
				b = append(b, "<channel-binding type='"+t+"'/>"...)
			}
			b = append(b, "</sasl-channel-binding>"...)
		}
	default:
		b = append(b, "<bind xmlns='"+nsBind+"'/>"+
			"<session xmlns='"+nsSession+"'><optional/></session>"+
			"<ver xmlns='urn:xmpp:features:rosterver'/>"+
			"<sub xmlns='urn:xmpp:features:pre-approval'/>"...)
		for _, f := range ss.srv.streamFeatures {
			b = append(b, f...)
		}
	}
	return append(b, "</stream:features>"...)
}

// next reads the next top-level element during negotiation, skipping
// whitespace keepalives.
func (ss *session) next() (*Element, error) {
	for {
		tok, err := ss.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := readElement(ss.dec, t, ss.srv.cfg.MaxDepth, ss.nsScope)
			if err != nil {
				return nil, err
			}
			ss.traceIn(el)
			return el, nil
		case xml.EndElement:
			return nil, errClosed
		case xml.CharData:
			if !isSpace(t) {
				return nil, streamError(stream.BadFormat, "text at stream level")
			}
		default:
			return nil, errRestricted
		}
	}
}

// unexpected answers an element that has no place at this stage.
func unexpected(el *Element) error {
	if el.Name.Space == nsClient && (el.Name.Local == "iq" || el.Name.Local == "message" || el.Name.Local == "presence") {
		// RFC 6120 §4.9.3.20: stanzas before authentication.
		return streamError(stream.NotAuthorized, "authenticate first")
	}
	return streamError(stream.UnsupportedStanzaType, "unexpected <"+el.Name.Local+"/> in "+el.Name.Space)
}

// negotiateTLS handles the pre-TLS stage. done reports a completed
// handshake (the stream restarts); false means the client went on to SASL
// where TLS is optional.
func (ss *session) negotiateTLS() (bool, error) {
	for {
		el, err := ss.next()
		if err != nil {
			return false, err
		}
		switch {
		case el.Name.Space == nsTLS && el.Name.Local == "starttls":
			if !ss.send([]byte("<proceed xmlns='" + nsTLS + "'/>")) {
				return false, errClosed
			}
			if n := ss.br.Buffered(); n > 0 {
				// Whitespace the client wrote with <starttls/> is harmless
				// (go-sendxmpp sends a newline); anything else after it and
				// before the handshake would be read in the clear, a
				// plaintext injection: refuse it (RFC 6120 §5.4.3.3).
				if b, _ := ss.br.Peek(n); !isSpace(b) {
					return false, streamError(stream.PolicyViolation, "data sent before the TLS handshake")
				}
				_, _ = ss.br.Discard(n)
			}
			tc := tls.Server(ss.conn, ss.srv.cfg.TLS)
			_ = ss.conn.SetDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
			if err := tc.Handshake(); err != nil {
				ss.log.Debug("STARTTLS handshake failed", "err", err)
				return false, errClosed
			}
			_ = ss.conn.SetDeadline(time.Time{})
			ss.wmu.Lock()
			ss.conn = tc
			ss.wmu.Unlock()
			cs := tc.ConnectionState()
			ss.tlsState, ss.secure = &cs, true
			ss.reset(ss.srv.cfg.MaxPreauthSize)
			return true, nil
		case el.Name.Space == nsSASL && el.Name.Local == "auth" && ss.srv.cfg.RequireTLS:
			// RFC 6120 §6.5.3 encryption-required.
			if !ss.send([]byte("<failure xmlns='" + nsSASL + "'><encryption-required/></failure>")) {
				return false, errClosed
			}
			if ss.attempts++; ss.attempts >= maxAttemptsPerStream {
				return false, streamError(stream.PolicyViolation, "too many failed attempts")
			}
		case el.Name.Space == nsSASL && el.Name.Local == "auth":
			ss.pending = el
			return false, nil
		default:
			return false, unexpected(el)
		}
	}
}

// authFailure is a SASL failure condition of RFC 6120 §6.5. credential
// marks a failure that checked a password (wrong proof or unknown user):
// only those count towards the per-stream limit and the throttle. A
// mechanism or channel-binding mismatch reveals nothing and is what clients
// hit while falling back through mechanisms (slixmpp tries every -PLUS
// variant with tls-unique on TLS 1.3 before reaching one that works).
type authFailure struct {
	cond       string
	credential bool
}

func (f authFailure) Error() string { return "sasl: " + f.cond }

func failure(cond string) authFailure { return authFailure{cond: cond} }

// maxAttemptsPerStream bounds all SASL attempts on one stream, failed
// credentials or not.
const maxAttemptsPerStream = 16

// negotiateSASL runs SASL exchanges until one succeeds. A failed attempt
// may be retried on the same stream up to the configured number of times;
// failures also count against the client's address and the account.
func (ss *session) negotiateSASL() error {
	for {
		el := ss.pending
		ss.pending = nil
		if el == nil {
			var err error
			if el, err = ss.next(); err != nil {
				return err
			}
		}
		switch {
		case el.Name.Space == nsSASL && el.Name.Local == "auth":
		case el.Name.Space == nsTLS && el.Name.Local == "starttls":
			if ss.secure {
				return streamError(stream.PolicyViolation, "TLS is already in place")
			}
			return streamError(stream.PolicyViolation, "STARTTLS must come before any authentication attempt")
		case el.Name.Space == nsSASL && el.Name.Local == "abort":
			if err := ss.saslFail(failure("aborted").cond, ""); err != nil {
				return err
			}
			continue
		case el.Name.Space == nsClient && el.Name.Local == "iq" && el.Children() == 1 && !ss.tlsRequired():
			var payload *Element
			for _, n := range el.Nodes {
				if n.Elem != nil {
					payload = n.Elem
				}
			}
			h := ss.srv.preauth[nonzaKey{payload.Name.Space, payload.Name.Local}]
			if h == nil || el.Get("id") == "" {
				return unexpected(el)
			}
			h(&PreAuthIQ{Stanza: el, Payload: payload, Domain: ss.domain, RemoteIP: ss.ip, ss: ss})
			continue
		default:
			return unexpected(el)
		}
		user, err := ss.saslExchange(el)
		if err == nil {
			ss.authed = user
			ss.throttle().succeeded(ss.ip, string(user))
			ss.log = ss.log.With("account", string(user))
			ss.log.Debug("authenticated", "mechanism", el.Get("mechanism"))
			return nil
		}
		var f authFailure
		if !errors.As(err, &f) {
			return err
		}
		if f.credential {
			ss.throttle().failed(ss.ip, string(user))
			ss.failures++
			ss.log.Info("authentication failed", "mechanism", el.Get("mechanism"), "user", string(user))
		} else {
			ss.log.Debug("authentication attempt refused", "mechanism", el.Get("mechanism"), "reason", f.cond)
		}
		if err := ss.saslFail(f.cond, ""); err != nil {
			return err
		}
	}
}

func (ss *session) throttle() *throttle { return ss.srv.throttle }

// saslFail sends a <failure/> and ends the stream after too many.
func (ss *session) saslFail(cond, text string) error {
	b := []byte("<failure xmlns='" + nsSASL + "'><" + cond + "/>")
	if text != "" {
		b = append(b, "<text xml:lang='en'>"...)
		b = appendEscaped(b, text, false)
		b = append(b, "</text>"...)
	}
	b = append(b, "</failure>"...)
	if !ss.send(b) {
		return errClosed
	}
	if ss.attempts++; ss.failures >= ss.srv.cfg.MaxFailuresPerStream || ss.attempts >= maxAttemptsPerStream {
		return streamError(stream.PolicyViolation, "too many failed authentication attempts")
	}
	return nil
}

// saslExchange runs one <auth/> exchange to its end. It returns the
// authenticated principal, or an authFailure (with the user it named, if
// any, for throttling).
func (ss *session) saslExchange(auth *Element) (core.PrincipalID, error) {
	name := auth.Get("mechanism")
	offered := false
	for _, m := range ss.mechanisms() {
		offered = offered || m == name
	}
	if !offered {
		if ss.tlsRequired() {
			return "", failure("encryption-required")
		}
		return "", failure("invalid-mechanism")
	}
	if ss.throttle().blockedIP(ss.ip) {
		return "", failure("temporary-auth-failure")
	}
	var res scram.Result
	var mech sasl.Mechanism
	if name == "PLAIN" {
		mech = ss.plain(&res)
	} else {
		var ok bool
		mech, ok = scram.Mechanism(name, scram.Options{
			Lookup:          ss.lookup,
			ServerCertDER:   ss.srv.certDER,
			PlusAdvertised:  ss.tlsState != nil,
			Domain:          ss.domain,
			DecoyIterations: ss.srv.cfg.ScramIterations,
		}, &res)
		if !ok {
			return "", failure("invalid-mechanism")
		}
	}
	var opts []sasl.Option
	if ss.tlsState != nil {
		opts = append(opts, sasl.TLSState(*ss.tlsState))
	}
	n := sasl.NewServer(mech, nil, opts...)
	data, err := decodeSASL(auth.Text())
	if err != nil {
		return "", failure("incorrect-encoding")
	}
	for {
		more, resp, err := n.Step(data)
		if err != nil {
			ss.log.Debug("SASL step failed", "mechanism", name, "err", err)
			return ss.userOf(res), saslCondition(err)
		}
		if !more {
			p, err := ss.principal(res.Username)
			if err != nil || p == "" {
				return "", authFailure{"not-authorized", true}
			}
			if ss.throttle().blockedAccount(string(p)) {
				return p, failure("temporary-auth-failure")
			}
			// RFC 6120 §6.4.6: additional data only if the mechanism has some.
			b := []byte("<success xmlns='" + nsSASL + "'/>")
			if len(resp) > 0 {
				b = append(append(b[:len(b)-2], '>'), encodeSASL(resp)...)
				b = append(b, "</success>"...)
			}
			if !ss.send(b) {
				return "", errClosed
			}
			return p, nil
		}
		b := []byte("<challenge xmlns='" + nsSASL + "'>")
		b = append(b, encodeSASL(resp)...)
		if !ss.send(append(b, "</challenge>"...)) {
			return "", errClosed
		}
		el, err := ss.next()
		if err != nil {
			return "", err
		}
		switch {
		case el.Name.Space == nsSASL && el.Name.Local == "response":
		case el.Name.Space == nsSASL && el.Name.Local == "abort":
			return "", failure("aborted")
		default:
			return "", unexpected(el)
		}
		if data, err = decodeSASL(el.Text()); err != nil {
			return "", failure("incorrect-encoding")
		}
	}
}

func (ss *session) userOf(r scram.Result) core.PrincipalID {
	p, _ := ss.principal(r.Username)
	return p
}

// principal turns a SASL username (a JID localpart, RFC 6120 §6.3.8) into
// the principal on this stream's domain.
func (ss *session) principal(user string) (core.PrincipalID, error) {
	j, err := jid.New(user, ss.domain, "")
	if err != nil || user == "" {
		return "", err
	}
	return core.PrincipalID(j.String()), nil
}

// lookup finds an account's credentials for one hash, for SCRAM.
func (ss *session) lookup(user, hash string) (core.Credentials, bool) {
	p, err := ss.principal(user)
	if err != nil || p == "" {
		return core.Credentials{}, false
	}
	acct, err := ss.srv.accounts.Account(context.Background(), p)
	if err != nil {
		return core.Credentials{}, false
	}
	for _, c := range acct.Credentials {
		if c.Hash == hash {
			return c, true
		}
	}
	return core.Credentials{}, false
}

func saslCondition(err error) error {
	switch {
	case errors.Is(err, scram.ErrMalformed):
		return failure("malformed-request")
	case errors.Is(err, scram.ErrChannelBinding):
		return failure("not-authorized")
	default:
		return authFailure{"not-authorized", true}
	}
}

// decodeSASL decodes a SASL payload; "=" is an empty response (RFC 6120
// §6.4.2).
func decodeSASL(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// encodeSASL encodes challenge or success data; an empty challenge is an
// empty element (RFC 6120 §6.4.3: "=" only marks an empty initial
// response).
func encodeSASL(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// plain is SASL PLAIN (RFC 4616) verified against the SCRAM-SHA-256 stored
// keys, so no password equivalent is ever stored.
func (ss *session) plain(res *scram.Result) sasl.Mechanism {
	return sasl.Mechanism{
		Name: "PLAIN",
		Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) {
			return false, nil, nil, sasl.ErrInvalidState
		},
		Next: func(_ *sasl.Negotiator, msg []byte, _ interface{}) (bool, []byte, interface{}, error) {
			if len(msg) == 0 {
				// Empty initial response: ask for the credentials.
				return true, nil, nil, nil
			}
			parts := strings.Split(string(msg), "\x00")
			if len(parts) != 3 || parts[1] == "" {
				return false, nil, nil, scram.ErrMalformed
			}
			authz, user, pass := parts[0], parts[1], parts[2]
			res.Username = user
			if authz != "" {
				if p, err := ss.principal(user); err != nil || (authz != user && authz != string(p)) {
					return false, nil, nil, scram.ErrNotAuthorized
				}
			}
			c, ok := ss.lookup(user, scram.SHA256)
			if !ok {
				// Spend the same work on an unknown user as on a known one.
				c = ss.srv.decoy
			}
			if !scram.VerifyPlain(c, pass) || !ok {
				return false, nil, nil, scram.ErrNotAuthorized
			}
			return false, nil, nil, nil
		},
	}
}
