#!/usr/bin/python3
"""XEP-0280 Message Carbons with slixmpp's xep_0280 plugin.

alice has two resources, r1 and r2, both enabling carbons with the
plugin's enable(). A chat message from bob to alice/r1 reaches r1 and shows
up on r2 as the plugin's carbon_received event (§7: wrapped in
<received/><forwarded/>, from alice's bare JID); a chat message alice/r1
sends to bob shows up on r2 as carbon_sent (§8), and not on r1 itself. A
message marked <private/> is not copied (§9). After r2
disables carbons with disable(), it gets no more copies (§5).

Absence is checked after round trips: once bob has the message, the
server has handled it; once r2's ping returns, whatever the server queued
for r2 before has arrived.
"""

from common import Client, call, el_str, main, nonce

NS = 'urn:xmpp:carbons:2'


def fwd(msg, kind):
    """The forwarded message of a carbon_received / carbon_sent event."""
    return msg[kind]  # is_extension: the plugin returns the forwarded stanza


def raw(client, kind, since):
    """The raw carbons of a kind (received / sent) client got since a mark:
    what the server sent, whether or not the plugin accepted it."""
    return [el_str(e) for e in client.stanzas[since:] if e.find('{%s}%s' % (NS, kind)) is not None]


def summary(msg, kind):
    f = fwd(msg, kind)
    return {'outer_from': str(msg['from']), 'outer_to': str(msg['to']), 'from': str(f['from']),
            'to': str(f['to']), 'body': f['body'], 'type': f['type']}


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    plugins = ('xep_0280',)
    r1 = await Client(cfg, cfg.user('alice'), 'r1-' + n, plugins=plugins).connect(presence={})
    r2 = await Client(cfg, cfg.user('alice'), 'r2-' + n, plugins=plugins).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'carbons-' + n).connect(presence={})
    for c in (r1, r2):
        c.track('carbon_received', 'carbon_sent', 'message')

    for c in (r1, r2):
        stanza = "<iq type='set'><enable xmlns='%s'/></iq> from %s" % (NS, c.full)
        res, err = await call('carbons enable', c.x['xep_0280'].enable(timeout=t), t)
        rep.must('enabling carbons on %s succeeds' % c.full, res is not None and res['type'] == 'result',
                 'XEP-0280 §4', 'type=result', el_str(err) if err is not None else el_str(res), stanza)

    # -- received: bob -> alice/r1
    b1 = 'to r1 %s' % n
    m1, e2, x2 = r1.emark('message'), r2.emark('carbon_received'), r2.mark()
    stanza = "<message type='chat' to='%s'><body>%s</body></message> from bob" % (r1.full, b1)
    bob.send_message(r1.full, b1)
    got1 = await r1.try_wait_event('message', lambda m: m['body'] == b1, 'the message', m1)
    rep.must('alice/r1 gets the message', got1 is not None, 'RFC 6121 8.5.3.1', b1, None, stanza)
    cr = await r2.try_wait_event('carbon_received', lambda m: fwd(m, 'carbon_received')['body'] == b1,
                                 'a received carbon', e2)
    want = {'outer_from': r2.bare, 'outer_to': r2.full, 'from': bob.full, 'to': r1.full, 'body': b1, 'type': 'chat'}
    rep.must('alice/r2 gets a <received/> carbon of it', cr is not None, 'XEP-0280 §7', want,
             raw(r2, 'received', x2), stanza)
    if cr is not None:
        rep.must('the received carbon comes from alice\'s bare JID and carries the original',
                 summary(cr, 'carbon_received') == want,
                 'XEP-0280 §7 (from the bare JID, to the receiving full JID; the original forwarded)',
                 want, summary(cr, 'carbon_received'), stanza)

    # -- sent: alice/r1 -> bob
    b2 = 'from r1 %s' % n
    mb, e2, x1, x2 = bob.mark(), r2.emark('carbon_sent'), r1.mark(), r2.mark()
    stanza = "<message type='chat' to='%s'><body>%s</body></message> from %s" % (bob.bare, b2, r1.full)
    r1.send_message(bob.bare, b2)
    got = await bob.try_wait_for(lambda el: el.findtext('{jabber:client}body') == b2, 'the message', mb)
    rep.must('bob gets the message', got is not None, 'RFC 6121 8.5.2', b2, None, stanza)
    cs = await r2.try_wait_event('carbon_sent', lambda m: fwd(m, 'carbon_sent')['body'] == b2, 'a sent carbon', e2)
    want = {'outer_from': r2.bare, 'outer_to': r2.full, 'from': r1.full, 'to': bob.bare, 'body': b2, 'type': 'chat'}
    rep.must('alice/r2 gets a <sent/> carbon of it', cs is not None, 'XEP-0280 §8', want,
             raw(r2, 'sent', x2), stanza)
    if cs is not None:
        rep.must("the sent carbon comes from alice's bare JID and carries the original",
                 summary(cs, 'carbon_sent') == want,
                 'XEP-0280 §8', want, summary(cs, 'carbon_sent'), stanza)
    await r1.barrier()
    rep.should('the sending resource gets no copy of its own message', not raw(r1, 'sent', x1),
               'XEP-0280 §8 (SHOULD NOT copy to the sending full JID)', [], raw(r1, 'sent', x1), stanza)

    # -- private: not copied
    b3 = 'private %s' % n
    mb, x2 = bob.mark(), r2.mark()
    stanza = "<message type='chat' to='%s'><body>%s</body><private xmlns='%s'/></message> from %s" % (
        bob.bare, b3, NS, r1.full)
    r1.send_message(bob.bare, b3, extra=("<private xmlns='%s'/>" % NS,))
    got = await bob.try_wait_for(lambda el: el.findtext('{jabber:client}body') == b3, 'the private message', mb)
    rep.must('bob gets the private message', got is not None, 'XEP-0280 §9', b3, None, stanza)
    if got is not None:
        rep.should('the <private/> element is stripped before delivery',
                   got.find('{%s}private' % NS) is None,
                   'XEP-0280 §9 (the receiving server SHOULD remove <private/> before delivering)',
                   'no <private/>', el_str(got), stanza)
    await r2.barrier()
    copies = raw(r2, 'sent', x2) + raw(r2, 'received', x2)
    rep.must('a <private/> message is not copied', not copies, 'XEP-0280 §9 (MUST NOT deliver forwarded copies)',
             [], copies, stanza)

    # -- r2 disables carbons
    stanza = "<iq type='set'><disable xmlns='%s'/></iq> from %s" % (NS, r2.full)
    res, err = await call('carbons disable', r2.x['xep_0280'].disable(timeout=t), t)
    rep.must('disabling carbons on alice/r2 succeeds', res is not None and res['type'] == 'result', 'XEP-0280 §5',
             'type=result', el_str(err) if err is not None else el_str(res), stanza)
    b4 = 'after disable %s' % n
    m1, x2 = r1.emark('message'), r2.mark()
    stanza = "<message type='chat' to='%s'><body>%s</body></message> from bob, r2 has disabled carbons" % (r1.full, b4)
    bob.send_message(r1.full, b4)
    got = await r1.try_wait_event('message', lambda m: m['body'] == b4, 'the message', m1)
    rep.must('alice/r1 gets the message', got is not None, 'RFC 6121 8.5.3.1', b4, None, stanza)
    await r2.barrier()
    copies = raw(r2, 'received', x2)
    rep.must('a resource that disabled carbons gets no copies', not copies, 'XEP-0280 §5', [], copies, stanza)
    rep.must('alice/r2 never got the messages addressed to alice/r1 themselves',
             not [m for m in r2.events['message'] if m['body'] in (b1, b4)], 'RFC 6121 8.5.3.1', [],
             [m['body'] for m in r2.events['message'] if m['body'] in (b1, b4)])


if __name__ == '__main__':
    main('xep0280_carbons', body, description=__doc__.splitlines()[0])
