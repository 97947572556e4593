#!/usr/bin/python3
"""Scenario 1: every ordered pair of subscription actions between two real
clients, checked against RFC 6121 Appendix A (model.py).

The ten actions are subscribe, subscribed (approve / pre-approve),
unsubscribe, unsubscribed (deny / cancel) and roster remove, each by
either party ("alice", the first of a pair, or "bob"). Every one of the
100 ordered pairs starts from a fresh state: each case uses its own pair
of accounts from the configuration's "pool" (15 accounts give 105 distinct
pairs). With a smaller pool pairs are reused after resetting them (both
parties deny, unsubscribe and remove), which relies on the server under
test; the report says which mode ran.

--walk states goes further: every one of the ten actions from every state
of Appendix A.1 (each state reached by a prefix of actions that is checked
step by step too), including pre-approvals on either side: 16 start
states, 160 cases, on fresh pairs with a pool of 19 accounts (171 pairs).
--walk all runs both (260 cases, 24 accounts).

After each step the actor does a roster get (its round trip proves the
server handled the action), then the other party does one (everything the
server queued for it before has arrived). Both rosters are then compared
with the model, as returned by the roster get and as maintained from the
roster pushes; subscription presence stanzas delivered to either party are
compared with what RFC 6121 says must be delivered, and so is the
availability presence of the other party's resource (current presence
when a subscription starts, unavailable when it ends, none without one).
"""

import itertools

from common import SUB_TYPES, Failed, Client, bare, main, NS_CLIENT, NS_ROSTER, q, reset_relations
from model import ACTIONS, PARTS, Model

ROLE = {'A': 'alice', 'B': 'bob'}

A, B = 'A', 'B'
# Action prefixes leading to each state of Appendix A.1 as alice's
# (states of bob's are their mirror images), with and without
# pre-approvals (3.4) and with a roster item where one is optional.
START_STATES = [
    ('None', []),
    ('None + Pending Out', [(A, 'subscribe')]),
    ('None + Pending In', [(B, 'subscribe')]),
    ('None + Pending In, alice has an item', [(A, 'subscribe'), (B, 'unsubscribed'), (B, 'subscribe')]),
    ('None + Pending Out/In', [(A, 'subscribe'), (B, 'subscribe')]),
    ('To', [(A, 'subscribe'), (B, 'subscribed')]),
    ('To + Pending In', [(A, 'subscribe'), (B, 'subscribed'), (B, 'subscribe')]),
    ('From', [(B, 'subscribe'), (A, 'subscribed')]),
    ('From + Pending Out', [(B, 'subscribe'), (A, 'subscribed'), (A, 'subscribe')]),
    ('Both', [(A, 'subscribe'), (B, 'subscribed'), (B, 'subscribe'), (A, 'subscribed')]),
    ('None, alice approved bob', [(A, 'subscribed')]),
    ('None + Pending Out, alice approved bob', [(A, 'subscribe'), (A, 'subscribed')]),
    ('To, alice approved bob', [(A, 'subscribe'), (B, 'subscribed'), (A, 'subscribed')]),
    ('None, bob approved alice', [(B, 'subscribed')]),
    ('None + Pending In, bob approved alice', [(B, 'subscribe'), (B, 'subscribed')]),
    ('From, bob approved alice', [(B, 'subscribe'), (A, 'subscribed'), (B, 'subscribed')]),
]


def is_push_for(el, jid):
    if el.tag != q(NS_CLIENT, 'iq') or el.get('type') != 'set':
        return False
    query = el.find(q(NS_ROSTER, 'query'))
    return query is not None and any(bare(i.get('jid')) == jid for i in query.findall(q(NS_ROSTER, 'item')))


def push_subscription(el, jid):
    for i in el.find(q(NS_ROSTER, 'query')).findall(q(NS_ROSTER, 'item')):
        if bare(i.get('jid')) == jid:
            return i.get('subscription', 'none')
    return None


def norm(item):
    if item is None:
        return None
    return {'subscription': item.get('subscription', 'none'),
            'ask': item.get('ask'), 'approved': bool(item.get('approved'))}


def apply_pushes(view, pushes, partner):
    for _ver, items in pushes:
        for it in items:
            if it['jid'] != partner:
                continue
            if it['subscription'] == 'remove':
                view = None
            else:
                view = norm(it)
    return view


async def run_case(rep, k, label, case, a, b, preapproval, reuse):
    label = 'case %d [%s]' % (k, label)
    cl = {'A': a, 'B': b}
    ra, rb = await a.roster_get(), await b.roster_get()
    fresh = ra.get(b.bare) is None and rb.get(a.bare) is None
    if reuse or not fresh:
        # A pair already used (a small pool, or a long-lived server).
        await reset_relations(a, b)
        ra, rb = await a.roster_get(), await b.roster_get()
        fresh = ra.get(b.bare) is None and rb.get(a.bare) is None
        rep.data['resets'] = rep.data.get('resets', 0) + 1
    rep.must('%s: fresh start (neither roster holds the other)' % label, fresh, '',
             {'A': None, 'B': None}, {'A': ra.get(b.bare), 'B': rb.get(a.bare)})
    view = {'A': norm(ra.get(b.bare)), 'B': norm(rb.get(a.bare))}
    model = Model(preapproval)
    trace = []
    case_ok = fresh
    for step, (x, act) in enumerate(case, 1):
        y = Model.other(x)
        cx, cy = cl[x], cl[y]
        marks = {p: c.mark() for p, c in cl.items()}
        pmarks = {p: len(c.pushes) for p, c in cl.items()}
        sees_before = {p: PARTS[model.p[p].state][0] for p in 'AB'}
        outcome = model.apply(x, act)
        what = '%s step %d (%s %s)' % (label, step, ROLE[x], act)
        if act == 'remove':
            cond = await cx.roster_set(cy.bare, subscription='remove')
            stanza = "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq> from %s" % (cy.bare, ROLE[x])
            case_ok &= rep.must('%s: roster remove answer' % what, cond == outcome.iq_error,
                                'RFC 6121 2.5.2 / 2.5.3', outcome.iq_error or 'result', cond or 'result', stanza)
        else:
            stanza = "<presence to='%s' type='%s'/> from %s" % (cy.bare, act, ROLE[x])
            cx.send_presence(to=cy.bare, type=act)
        got = {x: await cx.roster_get()}
        got[y] = await cy.roster_get()
        step_rec = {'step': step, 'actor': ROLE[x], 'action': act, 'rules': outcome.rules,
                    'expected': {}, 'roster_get': {}, 'pushed_view': {}, 'delivered': {}}
        for p in 'AB':
            c, partner = cl[p], cl[Model.other(p)]
            exp = model.p[p].visible()
            obs = norm(got[p].get(partner.bare))
            view[p] = apply_pushes(view[p], c.pushes[pmarks[p]:], partner.bare)
            step_rec['expected'][ROLE[p]] = exp
            step_rec['roster_get'][ROLE[p]] = obs
            step_rec['pushed_view'][ROLE[p]] = view[p]
            rules = '; '.join(outcome.rules)
            case_ok &= rep.must('%s: %s\'s roster item for %s (roster get)' % (what, ROLE[p], ROLE[Model.other(p)]),
                                obs == exp, 'RFC 6121 Appendix A (%s)' % rules, exp, obs, stanza)
            case_ok &= rep.must('%s: %s\'s roster item for %s (as maintained from roster pushes)' % (what, ROLE[p], ROLE[Model.other(p)]),
                                view[p] == exp, 'RFC 6121 2.1.6, 3 (%s)' % rules, exp, view[p], stanza)
            # subscription presence delivered to p from its partner
            types = [s.get('type') for s in c.stanzas[marks[p]:]
                     if s.tag == q(NS_CLIENT, 'presence') and s.get('type') in SUB_TYPES and bare(s.get('from')) == partner.bare]
            step_rec['delivered'][ROLE[p]] = types
            # Presence of the partner's (available) resource: it arrives
            # when p starts seeing the partner (3.1.5, 3.4: current
            # presence after approval), 'unavailable' when p stops
            # (3.2.2, 3.3.3), and never while p does not see the partner.
            pres = [('unavailable' if s.get('type') == 'unavailable' else 'available')
                    for s in c.stanzas[marks[p]:]
                    if s.tag == q(NS_CLIENT, 'presence') and s.get('type') in (None, 'unavailable')
                    and s.get('from') == partner.full]
            step_rec['presence'] = step_rec.get('presence', {})
            step_rec['presence'][ROLE[p]] = pres
            before, after = sees_before[p], PARTS[model.p[p].state][0]
            who = "%s's" % ROLE[Model.other(p)]
            if not before and after:
                case_ok &= rep.must('%s: %s now subscribed: receives %s current presence' % (what, ROLE[p], who),
                                    'available' in pres, 'RFC 6121 3.1.5 / 3.4 (%s)' % rules, ['available'], pres, stanza)
            elif before and not after:
                case_ok &= rep.must('%s: %s no longer subscribed: receives %s unavailable presence' % (what, ROLE[p], who),
                                    'unavailable' in pres, 'RFC 6121 3.2.2 / 3.3.3 (%s)' % rules, ['unavailable'], pres, stanza)
            if not after:
                case_ok &= rep.must('%s: %s, not subscribed, receives no available presence of %s' % (what, ROLE[p], ROLE[Model.other(p)]),
                                    'available' not in pres, 'RFC 6121 4.4.2, 4.3.2 (%s)' % rules, [], pres, stanza)
            # 3.1.6 (and 3.2.3 for cancellations): the inbound stanza is
            # delivered before the roster push it causes.
            for t, level in (('subscribed', 'must'), ('unsubscribed', 'should')):
                if (p, t) not in outcome.deliver:
                    continue
                seq = [s for s in c.stanzas[marks[p]:]
                       if (s.tag == q(NS_CLIENT, 'presence') and s.get('type') == t and bare(s.get('from')) == partner.bare)
                       or is_push_for(s, partner.bare)]
                # The push the inbound stanza causes shows the new
                # subscription (an earlier push in the same step may come
                # from the user's own action, e.g. ask='subscribe').
                final = (exp or {}).get('subscription')
                kinds = ['presence' if s.tag == q(NS_CLIENT, 'presence') else
                         'push(%s)' % push_subscription(s, partner.bare) for s in seq]
                caused = 'push(%s)' % final
                if 'presence' in kinds and caused in kinds:
                    case_ok &= rep.check(level, '%s: %s gets <presence type=\'%s\'/> before the roster push it causes' % (what, ROLE[p], t),
                                         kinds.index('presence') < kinds.index(caused),
                                         'RFC 6121 3.1.6' if t == 'subscribed' else 'RFC 6121 3.2.3',
                                         'presence, then %s' % caused, kinds, stanza) or level != 'must'
            must = [t for (r, t) in outcome.deliver if r == p]
            for t in must:
                case_ok &= rep.must('%s: %s receives <presence type=\'%s\'/> from %s' % (what, ROLE[p], t, ROLE[Model.other(p)]),
                                    t in types, 'RFC 6121 3 / Appendix A.3 (%s)' % rules, must, types, stanza)
            allowed = must + [t for (r, t) in outcome.allowed if r == p]
            extra = [t for t in types if t not in allowed]
            if extra:
                rep.should('%s: %s receives no other subscription presence from %s' % (what, ROLE[p], ROLE[Model.other(p)]),
                           False, 'RFC 6121 Appendix A.3 "deliver? no" (%s)' % rules, must, types, stanza)
        trace.append(step_rec)
    rep.data.setdefault('cases', []).append({'case': k, 'label': label, 'ok': bool(case_ok), 'steps': trace,
                                             'accounts': [a.bare, b.bare]})


async def body(cfg, rep, args):
    if len(cfg.pool) < 2:
        raise Failed('the configuration needs a "pool" of at least 2 accounts')
    clients = [Client(cfg, u, resource='walk') for u in cfg.pool]
    for c in clients:
        await c.connect(presence={}, roster=True)
    preapproval = 'preapproval' in clients[0].features()
    rep.data['preapproval_advertised'] = preapproval
    rep.info('server advertises subscription pre-approval (urn:xmpp:features:pre-approval)', preapproval)
    single = [(x, a) for x in 'AB' for a in ACTIONS]
    cases = []
    if args.walk in ('pairs', 'all'):
        cases += [('%s %s, then %s %s' % (ROLE[s1[0]], s1[1], ROLE[s2[0]], s2[1]), [s1, s2])
                  for s1 in single for s2 in single]
    if args.walk in ('states', 'all'):
        for name, prefix in START_STATES:
            if 'approved' in name and not preapproval:
                continue
            cases += [('from %s: %s %s' % (name, ROLE[x], a), prefix + [(x, a)]) for (x, a) in single]
    numbered = list(enumerate(cases))
    if args.only:
        numbered = [numbered[i] for i in args.only]
    pairs = list(itertools.combinations(range(len(clients)), 2))
    reuse = len(pairs) < max(k for k, _ in numbered) + 1
    rep.data['mode'] = 'reset between cases (pool too small)' if reuse else 'fresh pair per case'
    for k, (label, case) in numbered:
        i, j = pairs[k % len(pairs)]
        await run_case(rep, k, label, case, clients[i], clients[j], preapproval, reuse)
    rep.data['cases_total'] = len(numbered)
    rep.data['cases_failed'] = sum(1 for c in rep.data['cases'] if not c['ok'])
    for c in clients:
        await c.close()


def add_args(p):
    p.add_argument('--walk', choices=('pairs', 'states', 'all'), default='pairs',
                   help='pairs: the 100 ordered pairs of actions from a fresh state; '
                        'states: every action from every state of Appendix A.1 '
                        '(reached by a prefix of actions, itself checked)')
    p.add_argument('--only', type=int, nargs='*', help='run only these case numbers')


if __name__ == '__main__':
    main('subscription-pairs', body, add_args)
