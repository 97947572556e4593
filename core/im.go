package core

import (
	"context"
	"fmt"
)

// Outcome tells the sender's side what became of an instant message.
type Outcome struct {
	Delivered int       // agents that took it
	Agents    []AgentID // which ones (the protocol copies to the others)
	Stored    bool      // kept in the inbox's offline store
	Dropped   bool      // silently discarded as the routing rules require
}

// Send is the INSTANT MESSAGE SERVICE: it carries m to the INSTANT INBOX of
// m.To's principal under the DELIVERY RULES and the routing rules of
// RFC 6121 §8.5, and reports the outcome so the sender learns of failure.
// Errors: ErrTooBig, ErrNoSuchPrincipal, ErrQuota, ErrNotDelivered (the
// protocol bounces it) and *RefusedError from the delivery rules.
func (e *Engine) Send(ctx context.Context, m *Message) (Outcome, error) {
	if len(m.Payload) > e.maxMessage {
		return Outcome{}, ErrTooBig
	}
	p := m.To.Principal()
	if r := e.delivery.MayDeliver(ctx, m, p); r != ReasonNone {
		return Outcome{}, &RefusedError{Reason: r}
	}
	if m.Stamp.IsZero() {
		m.Stamp = e.now()
	}
	full := m.To != AgentID(p)
	if full {
		connected := false
		e.agents.view(p, func(in *inbox) { connected = in.find(m.To) >= 0 })
		if connected && e.notify.Deliver(ctx, m.To, m) {
			return Outcome{Delivered: 1, Agents: []AgentID{m.To}}, nil
		}
		// RFC 6121 §8.5.3.2.1: no such resource.
		switch m.Kind {
		case MsgChat:
			// handled as if sent to the bare JID, below
		case MsgError, MsgHeadline:
			return Outcome{Dropped: true}, nil
		default:
			// normal, groupchat: silently ignore or return an error,
			// never store (offline storage is for the bare JID and chat).
			if e.agents.exists(p) {
				return Outcome{}, ErrNotDelivered
			}
			return e.unroutable(ctx, m, p)
		}
	}
	return e.toBare(ctx, m, p)
}

// unroutable answers a message that no agent of p may take and that must
// not be stored: ErrNoSuchPrincipal for an unknown principal, else
// ErrNotDelivered.
func (e *Engine) unroutable(ctx context.Context, m *Message, p PrincipalID) (Outcome, error) {
	err := e.store.View(ctx, func(tx Tx) error {
		ok, err := tx.AccountExists(ctx, p)
		if err == nil && !ok {
			err = ErrNoSuchPrincipal
		}
		return err
	})
	if err == nil {
		err = ErrNotDelivered
	}
	return Outcome{}, fmt.Errorf("message %s to %s: %w", m.ID, m.To, err)
}

// toBare applies RFC 6121 §8.5.2 for a message to the principal itself.
func (e *Engine) toBare(ctx context.Context, m *Message, p PrincipalID) (Outcome, error) {
	if m.Kind == MsgGroupchat {
		// §8.5.2.1.1: groupchat to a bare JID is an error.
		if e.agents.exists(p) {
			return Outcome{}, ErrNotDelivered
		}
		return e.noAgents(ctx, m, p)
	}
	if m.Kind == MsgError {
		return Outcome{Dropped: true}, nil
	}
	targets := e.agents.bareTargets(make([]AgentID, 0, 2), p, m.Kind == MsgHeadline)
	took := targets[:0]
	for _, a := range targets {
		if e.notify.Deliver(ctx, a, m) {
			took = append(took, a)
		}
	}
	if len(took) > 0 {
		return Outcome{Delivered: len(took), Agents: took}, nil
	}
	return e.noAgents(ctx, m, p)
}

// noAgents applies §8.5.2.2: no available agent takes the message.
func (e *Engine) noAgents(ctx context.Context, m *Message, p PrincipalID) (Outcome, error) {
	var out Outcome
	err := e.store.Update(ctx, func(tx Tx) error {
		ok, err := tx.AccountExists(ctx, p)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoSuchPrincipal
		}
		switch {
		case m.Kind == MsgGroupchat:
			return ErrNotDelivered
		case m.Kind == MsgHeadline || m.Kind == MsgError || !m.Storable:
			out.Dropped = true
			return nil
		}
		n, err := tx.CountOffline(ctx, p)
		if err != nil {
			return err
		}
		if n >= e.quota {
			return ErrQuota
		}
		if _, err := tx.PutOffline(ctx, p, *m); err != nil {
			return err
		}
		out.Stored = true
		return nil
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("message %s to %s: %w", m.ID, m.To, err)
	}
	if out.Stored {
		// An agent may have become available while this message was being
		// stored, after its own initial drain read the inbox: drain again
		// for it. Drains are serialised per principal and the message is
		// committed, so either that drain or this one delivers it.
		var to [1]AgentID
		if t := e.agents.bareTargets(to[:0], p, false); len(t) > 0 {
			if _, err := e.DrainOffline(ctx, t[0]); err != nil {
				return out, fmt.Errorf("message %s to %s: late drain: %w", m.ID, m.To, err)
			}
		}
	}
	return out, nil
}

// DrainOffline delivers the messages waiting in the agent's principal's
// inbox to that agent, oldest first, and removes those it took. It is
// called when the agent becomes available (XEP-0160 in XMPP).
func (e *Engine) DrainOffline(ctx context.Context, a AgentID) (int, error) {
	p := a.Principal()
	// Two agents of one principal must not both take the same messages.
	mu := &e.drainLocks[e.agents.shardIndex(p)]
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for {
		var batch []StoredMessage
		err := e.store.View(ctx, func(tx Tx) error {
			var err error
			batch, err = tx.Offline(ctx, p, 256)
			return err
		})
		if err != nil || len(batch) == 0 {
			return total, err
		}
		var upto int64
		n := 0
		for i := range batch {
			batch[i].Delayed = true
			if !e.notify.Deliver(ctx, a, &batch[i].Message) {
				break
			}
			upto = batch[i].Seq
			n++
		}
		total += n
		if n == 0 {
			return total, nil
		}
		if err := e.store.Update(ctx, func(tx Tx) error { return tx.DeleteOffline(ctx, p, upto) }); err != nil {
			return total, fmt.Errorf("drain offline for %s: %w", a, err)
		}
		if n != len(batch) {
			return total, nil
		}
	}
}
