#!/usr/bin/python3
"""XEP-0191 Blocking Command with slixmpp's xep_0191 plugin.

alice has two resources, r1 and r2, both of which retrieve the blocklist
with get_blocked() (empty at first, §5.2); bob and carol are other users.

- bob subscribes to alice's presence. r1 blocks bob with block(): the
  result comes back, both resources get the push (the plugin's 'blocked'
  event, §5.3), get_blocked() lists bob, and bob gets unavailable presence
  from both resources (§5.3).
- bob's message to alice (her bare JID, then r1's full JID) bounces
  (service-unavailable, should) and reaches neither resource; his ping to
  r1 gets an error (§5.3); alice's message to bob bounces with
  not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/> (§5.3).
- r1 unblocks bob with unblock(): r2 gets the push ('unblocked', §5.4); bob
  gets both resources' current presence again and can write to alice.
- r1 blocks bob and carol, then unblocks everyone (an empty <unblock/>,
  §5.5): r2 gets an empty unblock push and the list is empty.
"""

from common import Client, call, el_str, error_condition, error_type, is_presence, main, nonce

NS = 'urn:xmpp:blocking'
NS_ERR = 'urn:xmpp:blocking:errors'


def items(push):
    return sorted(str(j) for j in push['items'])


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    plugins = ('xep_0191',)
    r1 = await Client(cfg, cfg.user('alice'), 'r1-' + n, plugins=plugins).connect(presence={})
    r2 = await Client(cfg, cfg.user('alice'), 'r2-' + n, plugins=plugins).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'block-' + n).connect(presence={})
    carol = await Client(cfg, cfg.user('carol'), 'block-' + n).connect(presence={})
    for c in (r1, r2):
        c.track('blocked', 'unblocked', 'message')
    bob.track('message')
    B1 = r1.x['xep_0191']

    async def blocklist(client, what):
        stanza = "<iq type='get'><blocklist xmlns='%s'/></iq> from %s" % (NS, client.full)
        res, err = await call('blocklist', client.x['xep_0191'].get_blocked(timeout=t), t)
        rep.must('%s: the blocklist is returned' % what, res is not None, 'XEP-0191 §5.2', 'type=result',
                 el_str(err), stanza)
        return None if res is None else sorted(str(j) for j in res['blocklist']['items'])

    for c in (r1, r2):
        got = await blocklist(c, 'at first (%s)' % c.full)
        rep.must('the blocklist is empty at first', got == [], 'XEP-0191 §5.2', [], got)

    # bob is subscribed to alice's presence: blocking must make alice's
    # resources unavailable for him, unblocking available again.
    await bob.subscribe_to(r1)

    # -- block bob
    e2, e1, mb = r2.emark('blocked'), r1.emark('blocked'), bob.mark()
    stanza = "<iq type='set'><block xmlns='%s'><item jid='%s'/></block></iq> from %s" % (NS, bob.bare, r1.full)
    res, err = await call('block', B1.block(bob.bare, timeout=t), t)
    rep.must('blocking bob succeeds', res is not None and res['type'] == 'result', 'XEP-0191 §5.3', 'type=result',
             el_str(err) if err is not None else el_str(res), stanza)
    push = await r2.try_wait_event('blocked', lambda p: True, 'a block push', e2)
    rep.must('the other resource gets a block push naming bob', push is not None and items(push['block']) == [bob.bare],
             'XEP-0191 §5.3 (push to all resources that requested the blocklist)', [bob.bare],
             None if push is None else el_str(push), stanza)
    own = await r1.try_wait_event('blocked', lambda p: True, 'a block push', e1)
    rep.must('the blocking resource, which requested the blocklist too, gets the push',
             own is not None and items(own['block']) == [bob.bare],
             'XEP-0191 §5.3 (push to all resources that requested the blocklist)', [bob.bare],
             None if own is None else el_str(own), stanza)
    got = await blocklist(r1, 'after blocking')
    rep.must('the blocklist now holds bob', got == [bob.bare], 'XEP-0191 §5.2', [bob.bare], got)
    for r in (r1, r2):
        gone = await bob.try_wait_for(is_presence('unavailable', full=r.full), 'unavailable from %s' % r.full, mb)
        rep.must('bob, a subscriber, gets unavailable presence from %s' % r.full, gone is not None,
                 'XEP-0191 §5.3 (MUST send unavailable presence to the contact)', 'unavailable from ' + r.full,
                 [el_str(e) for e in bob.stanzas[mb:] if e.tag == '{jabber:client}presence'], stanza)

    # -- bob's messages bounce, alice's bounce too
    for to in (r1.bare, r1.full):
        text = 'blocked %s to %s' % (n, to)
        mb, m1, m2 = bob.mark(), r1.emark('message'), r2.emark('message')
        stanza = "<message type='chat' to='%s'><body>%s</body></message> from bob (blocked by alice)" % (to, text)
        bob.send_message(to, text)
        bounce = await bob.try_wait_for(lambda el: el.tag == '{jabber:client}message' and el.get('type') == 'error',
                                        'a bounce', mb)
        rep.must('a message from a blocked user to %s bounces' % to, bounce is not None,
                 'XEP-0191 §5.3 (message from a blocked contact: SHOULD return an error)', 'an error',
                 el_str(bounce), stanza)
        rep.should('the bounce is service-unavailable', bounce is not None
                   and error_condition(bounce) == 'service-unavailable' and error_type(bounce) == 'cancel',
                   'XEP-0191 §5.3 (the error SHOULD be service-unavailable)',
                   "error type='cancel' service-unavailable", el_str(bounce), stanza)
        await r1.barrier()
        await r2.barrier()
        leaked = [m['body'] for m in r1.events['message'][m1:] + r2.events['message'][m2:] if m['body'] == text]
        rep.must('alice does not get it', not leaked, 'XEP-0191 §5.3 (MUST NOT deliver stanzas from the contact)', [],
                 leaked, stanza)

    stanza = "<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq> from bob (blocked by alice)" % r1.full
    res, err = await call('ping from a blocked user', bob.x['xep_0199'].send_ping(r1.full, timeout=t), t)
    rep.must('an IQ get from a blocked user gets an error', res is None and err is not None,
             'XEP-0191 §5.3 (IQ get/set: MUST return an error)', 'an error',
             el_str(err) if err is not None else el_str(res), stanza)
    rep.should('the IQ error is service-unavailable', error_condition(err) == 'service-unavailable',
               'XEP-0191 §5.3 (SHOULD be service-unavailable)', 'service-unavailable', el_str(err), stanza)

    text = 'to blocked %s' % n
    m1 = r1.mark()
    stanza = "<message type='chat' to='%s'><body>%s</body></message> from %s" % (bob.bare, text, r1.full)
    r1.send_message(bob.bare, text)
    bounce = await r1.try_wait_for(lambda el: el.tag == '{jabber:client}message' and el.get('type') == 'error',
                                   'a bounce', m1)
    blocked_el = bounce is not None and bounce.find('{jabber:client}error/{%s}blocked' % NS_ERR) is not None
    rep.must('a message to a blocked user bounces with not-acceptable and <blocked/>',
             bounce is not None and error_condition(bounce) == 'not-acceptable' and blocked_el,
             'XEP-0191 §5.3 (outbound to a blocked contact)',
             "error not-acceptable with <blocked xmlns='%s'/>" % NS_ERR, el_str(bounce), stanza)
    await bob.barrier()
    leaked = [m['body'] for m in bob.events['message'] if m['body'] == text]
    rep.must('bob does not get it', not leaked, 'XEP-0191 §5.3 (MUST NOT route to the blocked contact)', [], leaked,
             stanza)

    # -- unblock bob
    e2, mb = r2.emark('unblocked'), bob.mark()
    stanza = "<iq type='set'><unblock xmlns='%s'><item jid='%s'/></unblock></iq> from %s" % (NS, bob.bare, r1.full)
    res, err = await call('unblock', B1.unblock(bob.bare, timeout=t), t)
    rep.must('unblocking bob succeeds', res is not None and res['type'] == 'result', 'XEP-0191 §5.4', 'type=result',
             el_str(err) if err is not None else el_str(res), stanza)
    push = await r2.try_wait_event('unblocked', lambda p: True, 'an unblock push', e2)
    rep.must('the other resource gets an unblock push naming bob',
             push is not None and items(push['unblock']) == [bob.bare], 'XEP-0191 §5.4', [bob.bare],
             None if push is None else el_str(push), stanza)
    got = await blocklist(r2, 'after unblocking')
    rep.must('the blocklist is empty again', got == [], 'XEP-0191 §5.4', [], got)
    for r in (r1, r2):
        back = await bob.try_wait_for(is_presence(None, full=r.full), 'presence from %s' % r.full, mb)
        rep.must("bob, a subscriber, gets %s's current presence again" % r.full, back is not None,
                 "XEP-0191 §5.4 (MUST send the user's current presence to the contact)", 'available from ' + r.full,
                 [el_str(e) for e in bob.stanzas[mb:] if e.tag == '{jabber:client}presence'], stanza)
    text = 'unblocked %s' % n
    m1 = r1.emark('message')
    bob.send_message(r1.full, text)
    rep.must('bob can write to alice again', await r1.try_wait_event('message', lambda m: m['body'] == text,
                                                                     'the message', m1) is not None,
             'XEP-0191 §5.4', text, None)

    # -- block two, unblock all
    res, err = await call('block two', B1.block([bob.bare, carol.bare], timeout=t), t)
    rep.must('blocking two JIDs at once succeeds', res is not None, 'XEP-0191 §5.3', 'type=result', el_str(err))
    got = await blocklist(r2, 'after blocking two')
    rep.must('the blocklist holds both', got == sorted([bob.bare, carol.bare]), 'XEP-0191 §5.2',
             sorted([bob.bare, carol.bare]), got)
    e2 = r2.emark('unblocked')
    stanza = "<iq type='set'><unblock xmlns='%s'/></iq> from %s" % (NS, r1.full)
    res, err = await call('unblock all', B1.unblock([], timeout=t), t)
    rep.must('unblocking everyone (empty <unblock/>) succeeds', res is not None and res['type'] == 'result',
             'XEP-0191 §5.5', 'type=result', el_str(err) if err is not None else el_str(res), stanza)
    push = await r2.try_wait_event('unblocked', lambda p: True, 'an unblock-all push', e2)
    rep.must('the other resource gets an empty unblock push', push is not None and items(push['unblock']) == [],
             'XEP-0191 §5.5 (unblock all: the push has no items)', "<unblock xmlns='%s'/>" % NS,
             None if push is None else el_str(push), stanza)
    got = await blocklist(r1, 'after unblocking all')
    rep.must('the blocklist is empty', got == [], 'XEP-0191 §5.5', [], got)


if __name__ == '__main__':
    main('xep0191_blocking', body, description=__doc__.splitlines()[0])
