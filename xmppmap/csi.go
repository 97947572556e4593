package xmppmap

// XEP-0352 Client State Indication. While a client says it is inactive
// (typically a phone with the screen off), presence is held and coalesced:
// only the latest presence from each sender is kept, and everything held
// goes out before the next other stanza or when the client becomes active
// again. Messages, IQs and subscription requests are never held.

const nsCSI = "urn:xmpp:csi:0"

// sendPresence queues a presence broadcast from sender, holding it while
// the client is inactive.
func (ss *session) sendPresence(sender string, b []byte) bool {
	ss.wmu.Lock()
	if !ss.inactive || ss.closing || !ss.writerOn {
		ok := ss.outLocked(b, true)
		ss.wmu.Unlock()
		return ok
	}
	if ss.held == nil {
		ss.held = make(map[string][]byte)
	}
	if _, ok := ss.held[sender]; !ok {
		ss.heldOrder = append(ss.heldOrder, sender)
	}
	ss.held[sender] = b
	ss.wmu.Unlock()
	return true
}

// flushHeldLocked queues the held presence in arrival order of senders.
// Called with wmu held.
func (ss *session) flushHeldLocked() {
	order, held := ss.heldOrder, ss.held
	ss.heldOrder, ss.held = nil, nil
	for _, k := range order {
		if !ss.enqueueLocked(held[k], true) {
			return
		}
	}
}

func (ss *session) setInactive(on bool) {
	ss.wmu.Lock()
	ss.inactive = on
	flushed := false
	if !on && len(ss.heldOrder) > 0 {
		ss.flushHeldLocked()
		flushed = true
	}
	ss.wmu.Unlock()
	if flushed {
		ss.kick()
	}
}

func (s *Server) registerCSI() {
	s.xeps = append(s.xeps, XEP{Number: 352, Title: "Client State Indication", Version: "1.0.0",
		Status: "complete: presence held and coalesced while inactive"})
	s.streamFeatures = append(s.streamFeatures, "<csi xmlns='"+nsCSI+"'/>")
	s.nonzas[nonzaKey{nsCSI, "active"}] = func(ss *session, _ *Element) error { ss.setInactive(false); return nil }
	s.nonzas[nonzaKey{nsCSI, "inactive"}] = func(ss *session, _ *Element) error { ss.setInactive(true); return nil }
}
