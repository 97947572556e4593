#!/usr/bin/python3
"""Scenario 2: roster pushes go to interested resources only.

alice has four resources: r1 and r2 requested the roster (interested) and
sent initial presence; r3 sent initial presence but never requested the
roster; r4 is only connected. r1 adds bob with a name and a group: r1 and
r2 get the push (RFC 6121 2.1.6: all interested resources, the one that
made the change included), r3 and r4 get none (2.2: only a resource that
requested the roster is interested). Then r2 renames the item and r1
removes it, with the same expectations; finally r3 requests the roster and
gets the next push too.
"""

from common import NS_CLIENT, NS_ROSTER, Client, bare, el_str, main, nonce, q


def pushes_since(c, mark):
    return [s for s in c.stanzas[mark:]
            if s.tag == q(NS_CLIENT, 'iq') and s.get('type') == 'set' and s.find(q(NS_ROSTER, 'query')) is not None]


def push_items(push):
    return [{'jid': bare(i.get('jid')), 'subscription': i.get('subscription', 'none'), 'name': i.get('name'),
             'groups': sorted(g.text or '' for g in i.findall(q(NS_ROSTER, 'group')))}
            for i in push.find(q(NS_ROSTER, 'query')).findall(q(NS_ROSTER, 'item'))]


def matches(item, expect):
    return all(item.get(k) == v for k, v in expect.items())


async def body(cfg, rep, args):
    n = nonce()
    alice = cfg.user('alice')
    bob = bare(cfg.jid('bob'))
    r1 = await Client(cfg, alice, 'r1-' + n).connect(roster=True, presence={})
    r2 = await Client(cfg, alice, 'r2-' + n).connect(roster=True, presence={})
    r3 = await Client(cfg, alice, 'r3-' + n).connect(roster=False, presence={})
    r4 = await Client(cfg, alice, 'r4-' + n).connect(roster=False, presence=None)
    allr = (r1, r2, r3, r4)
    for r in allr:
        await r.barrier()

    async def change(actor, what, expect_item, interested, uninterested, **set_args):
        marks = {r: r.mark() for r in allr}
        cond = await actor.roster_set(bob, **set_args)
        stanza = '%s by %s' % (what, actor.full)
        rep.must('%s: IQ result' % what, cond is None, 'RFC 6121 2.3.2 / 2.5.2', 'result', cond or 'result', stanza)
        for r in allr:
            await r.barrier()
        for r in interested:
            ps = pushes_since(r, marks[r])
            items = [push_items(p) for p in ps]
            rep.must('%s: interested resource %s gets the roster push' % (what, r.full),
                     any(matches(i, expect_item) for it in items for i in it), 'RFC 6121 2.1.6', expect_item, items, stanza)
            rep.should('%s: %s gets exactly one push' % (what, r.full), len(ps) == 1, 'RFC 6121 2.1.6',
                       1, len(ps), stanza)
            for p in ps:
                rep.must('%s: the push to %s holds exactly one item' % (what, r.full),
                         len(push_items(p)) == 1, 'RFC 6121 2.1.6', 1, el_str(p), stanza)
                frm = p.get('from')
                rep.must('%s: the push to %s comes from the account (no from, or its bare JID)' % (what, r.full),
                         not frm or bare(frm) == r.bare and '/' not in frm, 'RFC 6121 2.1.6',
                         'no from, or %s' % r.bare, frm, stanza)
                rep.must('%s: the push is addressed to %s' % (what, r.full),
                         (p.get('to') or '') in ('', r.full), 'RFC 6121 2.1.6', r.full, p.get('to'), stanza)
        for r in uninterested:
            ps = pushes_since(r, marks[r])
            rep.must('%s: %s, which never requested the roster, gets no push' % (what, r.full),
                     not ps, 'RFC 6121 2.1.6, 2.2 (interested resources)', [], [el_str(p) for p in ps], stanza)

    name1, group = 'Bob %s' % n, 'Friends %s' % n
    await change(r1, 'r1 adds bob (name, group)',
                 {'jid': bob, 'subscription': 'none', 'name': name1, 'groups': [group]},
                 (r1, r2), (r3, r4), name=name1, groups=[group])
    name2 = 'Robert %s' % n
    await change(r2, 'r2 renames bob',
                 {'jid': bob, 'subscription': 'none', 'name': name2, 'groups': [group]},
                 (r1, r2), (r3, r4), name=name2, groups=[group])
    roster = await r3.roster_get()
    rep.must('r3 requests the roster: it holds bob as set', roster.get(bob, {}).get('name') == name2,
             'RFC 6121 2.2', name2, roster.get(bob))
    await change(r1, 'r1 removes bob (r3 now interested)',
                 {'jid': bob, 'subscription': 'remove'},
                 (r1, r2, r3), (r4,), subscription='remove')
    for r in allr:
        await r.close()


if __name__ == '__main__':
    main('roster-push', body)
