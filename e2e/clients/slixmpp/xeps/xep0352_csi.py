#!/usr/bin/python3
"""XEP-0352 Client State Indication with slixmpp's xep_0352 plugin.

alice has two resources: "phone" (with the plugin) and "desk" (without);
she and bob subscribe to each other. The server advertises <csi/> (§3.1),
so the plugin enables itself. phone sends <inactive/> with
send_inactive(); bob then changes his presence three times. desk, which
stays active, gets all three; phone gets none of them while inactive (§2
leaves what to hold to the server: imppd holds presence). phone sends
<active/> with send_active() and a ping: bob's latest presence arrives
before the answer (§4.1 in-order processing); whether the older ones were
dropped (coalesced) is reported in data["flushed"].

Then phone goes inactive again, bob changes his presence once more and
sends phone a chat message: the message is delivered at once (messages are
not held), and the held presence arrives before it (data["order"]).

Synchronisation: desk getting bob's third presence and then completing a
ping round trip shows the server has handled and fanned out all three; any
copy for phone not held would have been written by then as well.
"""

from common import Client, Failed, main, mutual, nonce, status_of


def is_bob_presence(bob):
    def p(el):
        return el.tag == '{jabber:client}presence' and el.get('from') == bob.full and el.get('type') in (None, '')
    return p


async def body(cfg, rep, args):
    n = nonce()
    phone = await Client(cfg, cfg.user('alice'), 'phone-' + n, plugins=('xep_0352',)).connect(
        roster=True, presence={})
    desk = await Client(cfg, cfg.user('alice'), 'desk-' + n).connect(roster=True, presence={})
    bob = await Client(cfg, cfg.user('bob'), 'csi-' + n).connect(roster=True, presence={'status': 'bob start'})
    csi = phone.x['xep_0352']
    rep.must("the server advertises <csi/> and slixmpp's plugin enabled itself", csi.enabled,
             'XEP-0352 §3.1 (stream feature after authentication)', True, csi.enabled)
    if not csi.enabled:
        raise Failed('CSI not offered')
    await mutual(desk, bob)
    await phone.barrier()
    bp = is_bob_presence(bob)

    # -- inactive: bob's presence updates are held
    statuses = ['bob away %s #%d' % (n, i) for i in range(3)]
    csi.send_inactive()
    await phone.barrier()  # the server has handled <inactive/>
    mp, md = phone.mark(), desk.mark()
    for i, s in enumerate(statuses):
        bob.send_presence(show='away', status=s)
    last = await desk.try_wait_for(lambda el: bp(el) and status_of(el) == statuses[-1], "bob's third presence", md)
    if last is None:
        raise Failed("desk did not get bob's presence updates")
    await desk.barrier()
    to_desk = [status_of(e) for e in desk.stanzas[md:] if bp(e)]
    held = [status_of(e) for e in phone.stanzas[mp:] if bp(e)]
    rep.must('the active resource gets all three updates', to_desk == statuses, 'RFC 6121 4.4.2', statuses, to_desk)
    rep.must('the inactive resource gets none of them while inactive', not held,
             'XEP-0352 §2 Server behaviour (suppress presence updates until active; imppd does)', [], held,
             "<inactive xmlns='urn:xmpp:csi:0'/>, then bob's <presence><show>away</show><status>...</status>"
             "</presence> x3")

    # -- active: the latest arrives, before the answer to a ping sent
    # right after <active/> (§4.1 in-order processing)
    mp = phone.mark()
    csi.send_active()
    await phone.barrier()
    flushed = [status_of(e) for e in phone.stanzas[mp:] if bp(e)]
    rep.data['flushed'] = flushed
    rep.must("after <active/> bob's latest presence arrives before the answer to the next ping",
             statuses[-1] in flushed,
             "XEP-0352 §2 Server behaviour (on becoming active, push the latest presence from each contact), "
             "§4.1 (in-order processing: flushed before the pong)", statuses[-1], flushed,
             "<active xmlns='urn:xmpp:csi:0'/><iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    rep.must('the latest presence comes last', flushed and flushed[-1] == statuses[-1],
             'RFC 6120 10.1 (order kept)', statuses[-1], flushed)

    # -- inactive again: a message is not held, and held presence goes first
    csi.send_inactive()
    await phone.barrier()
    mp, md = phone.mark(), desk.mark()
    s4 = 'bob busy %s' % n
    bob.send_presence(show='dnd', status=s4)
    if await desk.try_wait_for(lambda el: bp(el) and status_of(el) == s4, "bob's fourth presence", md) is None:
        raise Failed("desk did not get bob's fourth presence")
    await desk.barrier()
    held = [status_of(e) for e in phone.stanzas[mp:] if bp(e)]
    rep.must('the fourth update is held too', not held, 'XEP-0352 §2 Server behaviour', [], held)
    text = 'urgent %s' % n
    bob.send_message(phone.full, text)
    msg = await phone.try_wait_for(lambda el: el.tag == '{jabber:client}message'
                                   and el.findtext('{jabber:client}body') == text, 'the message', mp)
    rep.must('a chat message reaches the inactive resource', msg is not None,
             'XEP-0352 §2 (optimisations are for unimportant stanzas; imppd never holds messages)', text, None,
             "<message type='chat' to='%s'><body>%s</body></message> from bob" % (phone.full, text))
    order = []
    for e in phone.stanzas[mp:]:
        if bp(e):
            order.append('presence:' + (status_of(e) or ''))
        elif e.tag == '{jabber:client}message' and e.findtext('{jabber:client}body') == text:
            order.append('message')
    rep.data['order'] = order
    csi.send_active()
    await phone.barrier()


if __name__ == '__main__':
    main('xep0352_csi', body, description=__doc__.splitlines()[0])
