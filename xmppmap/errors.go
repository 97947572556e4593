package xmppmap

import (
	"errors"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
)

// StanzaError is a stanza error with an optional application-specific
// condition element (RFC 6120 §8.3.4), serialized XML.
type StanzaError struct {
	stanza.Error
	App string
}

// appBlocked is XEP-0191 §3.6's condition for a message to someone the
// sender blocks.
const appBlocked = "<blocked xmlns='urn:xmpp:blocking:errors'/>"

// ErrBlocking is the error for a stanza to an address the sender blocks.
var ErrBlocking = StanzaError{stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable}, appBlocked}

// stanzaErrorFor maps an engine error onto the one stanza error that tells
// the sender what happened. This table is the only place where core's
// errors meet RFC 6120 §8.3 conditions.
func stanzaErrorFor(err error) StanzaError {
	var refused *core.RefusedError
	if errors.As(err, &refused) && refused.Reason == core.ReasonBlocking {
		return ErrBlocking
	}
	return StanzaError{Error: conditionFor(err)}
}

func conditionFor(err error) stanza.Error {
	var refused *core.RefusedError
	switch {
	case errors.As(err, &refused):
		switch refused.Reason {
		case core.ReasonBlocked, core.ReasonContactsOnly:
			// Reveal nothing about the recipient (XEP-0191 §3.5).
			return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		case core.ReasonQuota:
			return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
		case core.ReasonNoSuchPrincipal:
			return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	case errors.Is(err, core.ErrNoSuchPrincipal):
		// RFC 6121 §8.5.1: no such user.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case errors.Is(err, core.ErrNotDelivered):
		// RFC 6121 §8.5.2.2 and §8.5.3.2.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case errors.Is(err, core.ErrQuota):
		// RFC 6121 §8.5.2.2.1 / XEP-0160: offline storage is full.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable, Text: map[string]string{"en": "offline storage is full"}}
	case errors.Is(err, core.ErrTooBig):
		return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, Text: map[string]string{"en": "message too large"}}
	case errors.Is(err, core.ErrSelf):
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAllowed}
	case errors.Is(err, core.ErrForbidden):
		return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

// appendStanzaError serializes an <error/> child (RFC 6120 §8.3.2) with
// optional application-specific condition elements.
func appendStanzaError(b []byte, se stanza.Error, app ...string) []byte {
	b = append(b, "<error type='"...)
	b = append(b, string(se.Type)...)
	b = append(b, "'><"...)
	b = append(b, string(se.Condition)...)
	b = append(b, " xmlns='"+nsStanza+"'/>"...)
	for lang, text := range se.Text {
		b = append(b, "<text xmlns='"+nsStanza+"'"...)
		if lang != "" {
			b = append(b, " xml:lang='"...)
			b = appendEscaped(b, lang, true)
			b = append(b, '\'')
		}
		b = append(b, '>')
		b = appendEscaped(b, text, false)
		b = append(b, "</text>"...)
	}
	for _, a := range app {
		b = append(b, a...)
	}
	return append(b, "</error>"...)
}

// appendAttr writes name='value' (escaped) when value is not empty.
func appendAttr(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = appendEscaped(b, value, true)
	return append(b, '\'')
}

// errorReply builds the error stanza answering el (RFC 6120 §8.3.1): the
// same kind, type='error', addressed back to its sender, carrying the
// original payload and the error.
func errorReply(el *Element, from string, se stanza.Error, app ...string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, '<')
	b = append(b, el.Name.Local...)
	b = append(b, " type='error'"...)
	b = appendAttr(b, "id", el.Get("id"))
	b = appendAttr(b, "from", from)
	b = appendAttr(b, "to", el.Get("from"))
	b = append(b, '>')
	for _, n := range el.Nodes {
		if n.Elem != nil && !(n.Elem.Name.Local == "error" && n.Elem.Name.Space == nsClient) {
			b = n.Elem.AppendXML(b, nsClient)
		}
	}
	b = appendStanzaError(b, se, app...)
	b = append(b, "</"...)
	b = append(b, el.Name.Local...)
	return append(b, '>')
}

// iqError answers an IQ with an error, without echoing its payload.
func iqError(iq *Element, from string, se stanza.Error, app ...string) []byte {
	b := []byte("<iq type='error' id='")
	b = appendEscaped(b, iq.Get("id"), true)
	b = append(b, '\'')
	b = appendAttr(b, "from", from)
	b = appendAttr(b, "to", iq.Get("from"))
	b = append(b, '>')
	b = appendStanzaError(b, se, app...)
	return append(b, "</iq>"...)
}

// iqResult answers an IQ with a result holding payload (may be empty).
func iqResult(iq *Element, from, payload string) []byte {
	b := []byte("<iq type='result' id='")
	b = appendEscaped(b, iq.Get("id"), true)
	b = append(b, '\'')
	b = appendAttr(b, "from", from)
	b = appendAttr(b, "to", iq.Get("from"))
	if payload == "" {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, payload...)
	return append(b, "</iq>"...)
}
