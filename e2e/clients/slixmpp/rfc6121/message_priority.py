#!/usr/bin/python3
"""Scenario 7: messages to a bare JID and resource priorities.

bob has three available resources: 'high' (priority 5), 'low' (1) and
'negative' (-1). alice sends to bob's bare JID:

1. chat and normal messages: only 'high' gets them. RFC 6121 8.5.2.1.1 lets
   the server deliver to the "most available" resource(s) (e.g. highest
   priority) or to all non-negative ones; imppd (and issue #4) chose the
   highest priority, so that is what is asserted. A headline goes to all
   non-negative resources (8.5.2.1.1). A message to bob's full JID
   'negative' reaches it (8.5.3.1: a full JID is delivered as addressed).
2. 'high' lowers its priority to 1: a chat message now reaches both 'high'
   and 'low' (imppd sends to all resources of the highest priority).
3. 'high' and 'low' log out: a chat message is not delivered to 'negative'
   (8.5.2.1.1: never to a negative priority); it may be stored offline and
   then reaches the next resource that logs in with a non-negative priority
   (reported, not required: offline storage is optional in RFC 6121).

'negative' never gets a message sent to the bare JID.
"""

from common import Client, bare, body_of, error_condition, is_message, main, nonce


async def body(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'sender-' + n).connect(roster=True, presence={})
    bob_user = cfg.user('bob')
    high = await Client(cfg, bob_user, 'high-' + n).connect(presence={'priority': 5})
    low = await Client(cfg, bob_user, 'low-' + n).connect(presence={'priority': 1})
    neg = await Client(cfg, bob_user, 'negative-' + n).connect(presence={'priority': -1})
    bobs = [high, low, neg]
    bob_bare = bare(bob_user['jid'])
    for c in bobs + [alice]:
        await c.barrier()  # every presence handled before the first message

    async def send(mtype, text, to=bob_bare):
        marks = {c: c.mark() for c in bobs}
        ma = alice.mark()
        alice.send_message(to, text, mtype=mtype)
        await alice.barrier()  # the server routed it
        for c in bobs:
            if c.connected:
                await c.barrier()  # and everything queued for c has arrived
        got = {c: [body_of(e) for e in c.stanzas[marks[c]:] if is_message(body=text)(e)] for c in bobs}
        errors = [error_condition(e) for e in alice.stanzas[ma:] if is_message()(e) and e.get('type') == 'error']
        return got, errors

    def expect(got, text, stanza, receivers, level_for=None, rfc='RFC 6121 8.5.2.1.1'):
        for c in bobs:
            if not c.connected and c not in receivers:
                continue
            want = c in receivers
            level = (level_for or {}).get(c, 'must')
            observed = len(got[c])
            rep.check(level, '%s: %s %s it' % (stanza, c.full, 'receives' if want else 'does not receive'),
                      observed == (1 if want else 0), rfc, 1 if want else 0, observed, stanza)

    # 1. priorities 5, 1, -1
    for mtype in ('chat', 'normal'):
        text = '%s to bare, priorities 5/1/-1 %s' % (mtype, n)
        stanza = "<message type='%s' to='%s'> (bob: high=5, low=1, negative=-1)" % (mtype, bob_bare)
        got, errs = await send(mtype, text)
        expect(got, text, stanza, [high], rfc='RFC 6121 8.5.2.1.1 (highest priority; issue #4)')
        rep.must('%s: no error to alice' % stanza, not errs, 'RFC 6121 8.5.2.1.1', [], errs, stanza)
    text = 'headline to bare ' + n
    stanza = "<message type='headline' to='%s'> (bob: high=5, low=1, negative=-1)" % bob_bare
    got, _ = await send('headline', text)
    expect(got, text, stanza, [high, low], {low: 'should'}, 'RFC 6121 8.5.2.1.1 (headline: all non-negative)')
    text = 'chat to the negative full JID ' + n
    stanza = "<message type='chat' to='%s'>" % neg.full
    got, _ = await send('chat', text, to=neg.full)
    expect(got, text, stanza, [neg], rfc='RFC 6121 8.5.3.1 (full JID of an available resource)')

    # 2. equal priorities
    high.send_presence(priority=1)
    await high.barrier()
    text = 'chat to bare, priorities 1/1/-1 ' + n
    stanza = "<message type='chat' to='%s'> (bob: high=1, low=1, negative=-1)" % bob_bare
    got, _ = await send('chat', text)
    expect(got, text, stanza, [high, low], rfc='RFC 6121 8.5.2.1.1 (all of the highest priority; issue #4)')

    # 3. only the negative-priority resource is left
    await high.close()
    await low.close()
    text = 'chat to bare, only priority -1 online ' + n
    stanza = "<message type='chat' to='%s'> (bob: only negative=-1 online)" % bob_bare
    got, errs = await send('chat', text)
    expect(got, text, stanza, [], rfc='RFC 6121 8.5.2.1.1 (never to a negative priority)')
    rep.info('%s: errors returned to alice' % stanza, errs)
    later = await Client(cfg, bob_user, 'later-' + n).connect(presence={'priority': 0})
    got_later = await later.try_wait_for(is_message(body=text), 'the message stored meanwhile')
    rep.info('%s: delivered from offline storage to the next non-negative resource' % stanza,
             got_later is not None)
    await later.barrier()
    rep.must('%s: %s still did not receive it' % (stanza, neg.full),
             not neg.received(is_message(body=text)), 'RFC 6121 8.5.2.1.1', 0,
             len(neg.received(is_message(body=text))), stanza)
    for c in (later, neg, alice):
        await c.close()


if __name__ == '__main__':
    main('message-priority', body)
