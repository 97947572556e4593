"""RFC 6121 subscription states (Appendix A) as an executable model.

Written from RFC 6121 itself, not from any server's code:

* Appendix A.1 defines the nine states of a user's subscription with a
  contact; A.2 gives the user's server's handling of the four outbound
  subscription stanzas, A.3 the contact's server's handling of the four
  inbound ones ("no state change" is None in the tables below).
* Section 3.1.2: a subscribe request adds the contact to the user's roster
  if absent (pushed with ask='subscribe'); it is routed to the contact.
* Section 3.1.3: at the contact's server a request is delivered to the
  contact's available resources when it changes the state (A.3.1 "yes"
  rows); if the user is already subscribed (From, From + Pending Out,
  Both) the contact's server auto-replies 'subscribed' and the contact is
  not bothered; a pre-approved request (3.4) is approved at once.
* Section 3.1.6: the user's server delivers an approval to the user
  before it sends the roster push that it causes (checked by the walk).
* Section 3.1.5: approving adds the user to the contact's roster if absent.
  An approval without a pending request is a pre-approval (3.4) when the
  server supports it (stream feature urn:xmpp:features:pre-approval): the
  approving user's roster gets the item (created if absent) with
  approved='true', and the 'subscribed' is not routed. Without that
  support it has no effect (A.2.3 "no state change").
* Section 3.2: 'unsubscribed' denies a request, cancels a subscription,
  and cancels a pre-approval.
* Section 2.5.2: removing a roster item cancels both directions: the
  server sends 'unsubscribe' if the user is subscribed to the contact or
  has a request pending, and 'unsubscribed' if the contact is subscribed
  to the user or has a request pending; the item (with its pre-approval)
  is gone. Section 2.5.3: removing an item that does not exist is
  item-not-found.
* Appendix A.1: in "None + Pending In" without any other state the
  contact's server SHOULD NOT push or deliver a roster item.

The roster item a user sees: subscription none/to/from/both from the
state, ask='subscribe' in the Pending Out states, approved='true' while a
pre-approval stands.
"""

NONE = 'None'
NPO = 'None + Pending Out'
NPI = 'None + Pending In'
NPOI = 'None + Pending Out/In'
TO = 'To'
TPI = 'To + Pending In'
FROM = 'From'
FPO = 'From + Pending Out'
BOTH = 'Both'

STATES = (NONE, NPO, NPI, NPOI, TO, TPI, FROM, FPO, BOTH)
_ = None  # "no state change"

# A.2.1 Outbound "subscribe" (the user asks to see the contact).
OUT_SUBSCRIBE = {NONE: NPO, NPO: _, NPI: NPOI, NPOI: _, TO: _, TPI: _, FROM: FPO, FPO: _, BOTH: _}
# A.2.2 Outbound "unsubscribe" (the user stops seeing the contact).
OUT_UNSUBSCRIBE = {NONE: _, NPO: NONE, NPI: _, NPOI: NPI, TO: NONE, TPI: NPI, FROM: _, FPO: FROM, BOTH: FROM}
# A.2.3 Outbound "subscribed" (the user approves the contact's request).
OUT_SUBSCRIBED = {NONE: _, NPO: _, NPI: FROM, NPOI: FPO, TO: _, TPI: BOTH, FROM: _, FPO: _, BOTH: _}
# A.2.4 Outbound "unsubscribed" (the user denies or cancels the contact).
OUT_UNSUBSCRIBED = {NONE: _, NPO: _, NPI: NONE, NPOI: NPO, TO: _, TPI: TO, FROM: NONE, FPO: NPO, BOTH: TO}
# A.3.1 Inbound "subscribe" (the contact's server gets the user's request).
IN_SUBSCRIBE = {NONE: NPI, NPO: NPOI, NPI: _, NPOI: _, TO: TPI, TPI: _, FROM: _, FPO: _, BOTH: _}
# A.3.2 Inbound "unsubscribe".
IN_UNSUBSCRIBE = {NONE: _, NPO: _, NPI: NONE, NPOI: NPO, TO: _, TPI: TO, FROM: NONE, FPO: NPO, BOTH: TO}
# A.3.3 Inbound "subscribed".
IN_SUBSCRIBED = {NONE: _, NPO: TO, NPI: _, NPOI: TPI, TO: _, TPI: _, FROM: _, FPO: BOTH, BOTH: _}
# A.3.4 Inbound "unsubscribed".
IN_UNSUBSCRIBED = {NONE: _, NPO: NONE, NPI: _, NPOI: NPI, TO: NONE, TPI: NPI, FROM: _, FPO: FROM, BOTH: FROM}

# The state's components: (user sees contact, contact sees user,
# user's request pending, contact's request pending).
PARTS = {
    NONE: (False, False, False, False),
    NPO: (False, False, True, False),
    NPI: (False, False, False, True),
    NPOI: (False, False, True, True),
    TO: (True, False, False, False),
    TPI: (True, False, False, True),
    FROM: (False, True, False, False),
    FPO: (False, True, True, False),
    BOTH: (True, True, False, False),
}
BY_PARTS = {v: k for k, v in PARTS.items()}


def mirror(state):
    """The contact's state when the user's is state."""
    to, frm, out, inn = PARTS[state]
    return BY_PARTS[(frm, to, inn, out)]


def subscription_attr(state):
    to, frm, _o, _i = PARTS[state]
    return {(False, False): 'none', (True, False): 'to', (False, True): 'from', (True, True): 'both'}[(to, frm)]


ACTIONS = ('subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'remove')


class Party:
    def __init__(self):
        self.state = NONE
        self.item = False      # the roster holds an item for the other party
        self.approved = False  # pre-approval of the other party stands

    def visible(self):
        """The roster item as the client should see it, or None."""
        if not self.item:
            return None
        to, frm, out, _i = PARTS[self.state]
        return {'subscription': subscription_attr(self.state),
                'ask': 'subscribe' if out else None,
                'approved': self.approved}

    def copy(self):
        p = Party()
        p.state, p.item, p.approved = self.state, self.item, self.approved
        return p


class Outcome:
    def __init__(self):
        self.deliver = []        # (receiver, type) that MUST be delivered
        self.allowed = []        # (receiver, type) that MAY be delivered
        self.iq_error = None     # defined condition of the roster set's error
        self.rules = []          # the RFC rules that applied, for reports

    def rule(self, s):
        self.rules.append(s)


class Model:
    """Two parties, 'A' and 'B', on servers that follow RFC 6121."""

    def __init__(self, preapproval):
        self.preapproval = preapproval
        self.p = {'A': Party(), 'B': Party()}

    @staticmethod
    def other(x):
        return 'B' if x == 'A' else 'A'

    def consistent(self):
        a, b = self.p['A'], self.p['B']
        return mirror(a.state) == b.state

    def visible(self):
        return {k: v.visible() for k, v in self.p.items()}

    def apply(self, actor, action):
        o = Outcome()
        getattr(self, '_' + action)(actor, self.other(actor), o)
        assert self.consistent(), (actor, action, self.p['A'].state, self.p['B'].state)
        for k, v in self.p.items():
            if v.approved:
                assert v.state in (NONE, NPO, TO), (k, v.state)
        return o

    # -- the user's side routes, the contact's side receives

    def _inbound(self, table, name, receiver, o):
        r = self.p[receiver]
        new = table[r.state]
        if new is None:
            o.rule('A.3 inbound %s at %s: no state change, not delivered' % (name, r.state))
            return
        o.rule('A.3 inbound %s at %s: %s, delivered' % (name, r.state, new))
        r.state = new
        o.deliver.append((receiver, name))

    def _subscribe(self, x, y, o):
        px, py = self.p[x], self.p[y]
        new = OUT_SUBSCRIBE[px.state]
        o.rule('A.2.1 outbound subscribe at %s: %s' % (px.state, new or 'no state change'))
        if new:
            px.state = new
        px.item = True  # 3.1.2
        if py.state in (FROM, FPO, BOTH):
            # 3.1.3 #2: the contact's server MUST auto-reply 'subscribed'.
            # Whether the user's server then delivers it is read both ways
            # (3.1.6 / A.3.3 say a 'subscribed' without a pending request
            # is not delivered; XMPP interop suites expect the auto-reply
            # to reach the user): it may be delivered.
            o.rule('3.1.3: already subscribed, auto-reply subscribed')
            self._inbound(IN_SUBSCRIBED, 'subscribed', x, o)
            o.allowed.append((x, 'subscribed'))
            return
        if py.approved and self.preapproval:
            # 3.4: a pre-approved request is approved at once.
            o.rule('3.4: pre-approved, approved by the server')
            py.state = {NONE: FROM, NPO: FPO, TO: BOTH}[py.state]
            py.approved = False
            self._inbound(IN_SUBSCRIBED, 'subscribed', x, o)
            return
        self._inbound(IN_SUBSCRIBE, 'subscribe', y, o)

    def _subscribed(self, x, y, o):
        px = self.p[x]
        if px.state in (NPI, NPOI, TPI):
            new = OUT_SUBSCRIBED[px.state]
            o.rule('A.2.3 outbound subscribed at %s: %s' % (px.state, new))
            px.state = new
            px.item = True  # 3.1.5
            self._inbound(IN_SUBSCRIBED, 'subscribed', y, o)
            return
        if px.state in (NONE, NPO, TO) and self.preapproval:
            o.rule('3.4: pre-approval at %s' % px.state)
            px.approved = True
            px.item = True
            return
        o.rule('A.2.3 outbound subscribed at %s: no state change, not routed' % px.state)

    def _unsubscribe(self, x, y, o):
        px = self.p[x]
        new = OUT_UNSUBSCRIBE[px.state]
        o.rule('A.2.2 outbound unsubscribe at %s: %s' % (px.state, new or 'no state change'))
        if new:
            px.state = new
        self._inbound(IN_UNSUBSCRIBE, 'unsubscribe', y, o)

    def _unsubscribed(self, x, y, o):
        px = self.p[x]
        if px.approved:
            o.rule('3.2/3.4: unsubscribed cancels the pre-approval')
            px.approved = False
        new = OUT_UNSUBSCRIBED[px.state]
        o.rule('A.2.4 outbound unsubscribed at %s: %s' % (px.state, new or 'no state change'))
        if new:
            px.state = new
        self._inbound(IN_UNSUBSCRIBED, 'unsubscribed', y, o)

    def _remove(self, x, y, o):
        px = self.p[x]
        if not px.item:
            o.rule('2.5.3: no such item: item-not-found')
            o.iq_error = 'item-not-found'
            return
        to, frm, out, inn = PARTS[px.state]
        o.rule('2.5.2: remove at %s' % px.state)
        if to or out:
            self._unsubscribe(x, y, o)
        if frm or inn:
            self._unsubscribed(x, y, o)
        px.item = False
        px.approved = False
        assert px.state == NONE, px.state


def _selftest():
    for s in STATES:
        assert mirror(mirror(s)) == s
        # An outbound stanza's change at the user matches the inbound
        # change at the contact (both servers agree on the state).
        for out, inn in ((OUT_SUBSCRIBE, IN_SUBSCRIBE), (OUT_UNSUBSCRIBE, IN_UNSUBSCRIBE),
                         (OUT_SUBSCRIBED, IN_SUBSCRIBED), (OUT_UNSUBSCRIBED, IN_UNSUBSCRIBED)):
            n1, n2 = out[s], inn[mirror(s)]
            if out is OUT_SUBSCRIBE and s in (TO, TPI, BOTH):
                continue  # routed; the contact auto-replies (3.1.3)
            assert (n1 or s) == mirror(n2 or mirror(s)), (s, n1, n2)
    n = 0
    for pre in (True, False):
        for a1 in ACTIONS:
            for x1 in 'AB':
                for a2 in ACTIONS:
                    for x2 in 'AB':
                        m = Model(pre)
                        m.apply(x1, a1)
                        m.apply(x2, a2)
                        n += 1
    return n


if __name__ == '__main__':
    print('model self-test: %d two-step walks consistent' % _selftest())
