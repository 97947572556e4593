#!/usr/bin/python3
"""XEP-0198 Stream Management with slixmpp's xep_0198 plugin.

alice logs in with the plugin, which enables stream management with
resumption (§3) during negotiation. bob (a plain client) sends alice a
chat message to her full JID; when it arrives alice stops reading, bob
sends the rest of a burst and completes a round trip with the server, and
alice's TCP connection is aborted under her (the transport is closed
without </stream:stream>, as a lost network would) with the rest of the
burst in flight: written by the server, never read by alice. While she is
away bob sends a second burst, and alice sends
messages to bob, which slixmpp queues. alice reconnects, as a client does
on 'disconnected'; slixmpp resumes the stream (§5) with the count of
stanzas it handled, the server retransmits what it had not seen
acknowledged, and slixmpp sends what it queued. Every message carries a
unique body: each of bob's must reach alice exactly once and each of
alice's must reach bob exactly once (§5: nothing lost, nothing
duplicated). The resumed session keeps alice's full JID, and the server's
<resumed h/> counts every stanza alice sent before the drop (§4).

Before the drop alice waits until the server has acknowledged everything
she sent: slixmpp 1.8.3 clears its queue of unacknowledged stanzas when it
sends <resume/>, so it could not retransmit its own stanzas lost in the
drop (a client bug the scenario steers around; the server side,
retransmitting to the client, is what is tested).
"""

import asyncio
import collections

from common import Client, Failed, el_str, main, nonce, q

NS = 'urn:xmpp:sm:3'


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    burst1 = int(cfg.expect.get('burst1', 20))
    burst2 = int(cfg.expect.get('burst2', 5))
    mine = int(cfg.expect.get('alice_sends', 3))
    alice = Client(cfg, cfg.user('alice'), 'sm-' + n, plugins=('xep_0198',))
    sm = alice.x['xep_0198']
    sm.window = 1  # ask for an ack after every stanza alice sends
    alice.track('sm_enabled', 'session_resumed', 'session_start', 'disconnected', 'message', 'sm_failed',
                'stanza_acked')
    nonzas = []  # stream management elements received: enabled, resumed, failed, a, r
    alice.x.add_filter('in', lambda s: (nonzas.append(s.xml) if s.xml.tag.startswith('{%s}' % NS) else None) or s)

    await alice.connect(presence={})
    full = alice.full
    if await alice.try_wait_event('sm_enabled', lambda e: True, 'sm_enabled') is None:
        raise Failed('stream management was not enabled; nonzas: %s' % [el_str(e) for e in nonzas])
    enabled = [e for e in nonzas if e.tag == q(NS, 'enabled')]
    rep.must('the server enables stream management with resumption', enabled and enabled[0].get('resume')
             in ('true', '1') and enabled[0].get('id'), 'XEP-0198 §3 (<enabled resume=true id=.../>)',
             "<enabled resume='true' id='...'/>", el_str(enabled[0]) if enabled else None,
             "<enable xmlns='%s' resume='true'/>" % NS)
    rep.data['sm_id'] = sm.sm_id

    bob = await Client(cfg, cfg.user('bob'), 'sm-' + n).connect(presence={})
    bob.track('message')

    # alice -> bob before the drop, acknowledged
    pre = ['alice pre %s #%d' % (n, i) for i in range(mine)]
    for b in pre:
        alice.send_message(bob.bare, b)
    await alice.barrier()
    if sm.last_ack != sm.seq:
        sm.request_ack()
        await alice.try_wait_event('stanza_acked', lambda s: sm.last_ack == sm.seq, 'acks', 0)
    sent_before_drop = sm.seq
    rep.must('the server acknowledges every stanza alice sent', sm.last_ack == sm.seq, 'XEP-0198 §4 (<a h/>)',
             sm.seq, sm.last_ack)

    # The drop. alice stops reading when the first message of bob's burst
    # arrives; bob sends the rest and completes a round trip with the
    # server, so the server has handled it and routed it to alice's
    # session; then alice's connection is aborted with all of that unread.
    loop = asyncio.get_running_loop()
    first = loop.create_future()
    dropped = loop.create_future()
    stats = {}

    def on_message(msg):
        if not first.done() and msg['body'].startswith('bob burst1 %s ' % n):
            alice.x.transport.pause_reading()
            stats['handled_at_pause'] = sm.handled
            first.set_result(True)
    alice.x.add_event_handler('message', on_message)

    offline = ['alice offline %s #%d' % (n, i) for i in range(mine)]
    reconnected = loop.create_future()

    def on_disconnected(_):
        if not dropped.done() or reconnected.done():
            return
        stats['received_before_drop'] = len([m for m in alice.events['message']
                                             if m['body'].startswith('bob burst1 %s ' % n)])
        # While away: bob goes on, alice writes (slixmpp queues it).
        for i in range(burst2):
            bob.send_message(full, 'bob burst2 %s #%d' % (n, i))
        for b in offline:
            alice.send_message(bob.bare, b)
        reconnected.set_result(True)
        alice.x.connect(address=(cfg.host, cfg.port))
    alice.x.add_event_handler('disconnected', on_disconnected)

    starts = alice.emark('session_start')
    burst = ['bob burst1 %s #%d' % (n, i) for i in range(burst1)]
    bob.send_message(full, burst[0])
    try:
        await asyncio.wait_for(first, t)
    except asyncio.TimeoutError:
        raise Failed('alice did not get the first message of the burst')
    for b in burst[1:]:
        bob.send_message(full, b)
    await bob.barrier()
    dropped.set_result(True)
    alice.x.transport.abort()  # no </stream:stream>, no TLS close_notify
    try:
        await asyncio.wait_for(reconnected, t)
    except asyncio.TimeoutError:
        raise Failed('slixmpp did not see the connection drop')
    rep.data['in_flight'] = burst1 - (stats.get('received_before_drop') or 0) + burst2
    rep.info('the drop', {'handled_at_pause': stats.get('handled_at_pause'), 'burst1': burst1, 'burst2': burst2,
                          'burst1_received_before_drop': stats.get('received_before_drop')})
    resumed = await alice.try_wait_event('session_resumed', lambda e: True, 'session_resumed', 0)
    res_el = [e for e in nonzas if e.tag == q(NS, 'resumed')]
    failed = [el_str(e) for e in nonzas if e.tag == q(NS, 'failed')]
    rep.must('slixmpp resumes the stream', resumed is not None and res_el, 'XEP-0198 §5 (<resumed/>)',
             "<resumed previd='%s' h='...'/>" % rep.data['sm_id'], {'resumed': el_str(res_el[0]) if res_el else None,
                                                                    'failed': failed},
             "<resume xmlns='%s' previd='%s' h='...'/>" % (NS, rep.data['sm_id']))
    if not res_el:
        raise Failed('no resumption')
    r = res_el[0]
    rep.must('<resumed/> names the previous stream', r.get('previd') == rep.data['sm_id'], 'XEP-0198 §5',
             rep.data['sm_id'], r.get('previd'))
    rep.must("<resumed h/> counts every stanza alice sent before the drop", r.get('h') == str(sent_before_drop),
             'XEP-0198 §5 (h: stanzas the server handled)', str(sent_before_drop), r.get('h'))
    rep.must('the resumed session has no new session start (no new bind)', alice.emark('session_start') == starts,
             'XEP-0198 §5', 0, alice.emark('session_start') - starts)
    rep.must('the full JID is unchanged', str(alice.x.boundjid) == full, 'XEP-0198 §5', full, str(alice.x.boundjid))

    # Everything arrives: wait for the last body of each kind, then round trips.
    want_alice = burst + ['bob burst2 %s #%d' % (n, i) for i in range(burst2)]
    want_bob = pre + offline

    def count(client, prefix):
        return collections.Counter(m['body'] for m in client.events['message'] if m['body'].startswith(prefix))

    async def all_of(client, wanted, what):
        wanted = set(wanted)
        return await client.try_wait_event('message', lambda m: wanted <= set(
            x['body'] for x in client.events['message']), what, 0)
    await all_of(alice, want_alice, "all of bob's messages")
    await all_of(bob, want_bob, "all of alice's messages")
    await alice.barrier()
    await bob.barrier()
    got_alice = count(alice, 'bob burst')
    got_bob = count(bob, 'alice ')
    lost_a = [b for b in want_alice if got_alice[b] == 0]
    dup_a = {b: c for b, c in got_alice.items() if c > 1}
    lost_b = [b for b in want_bob if got_bob[b] == 0]
    dup_b = {b: c for b, c in got_bob.items() if c > 1}
    rep.data['to_alice'] = {'sent': len(want_alice), 'received': sum(got_alice.values()), 'lost': lost_a,
                            'duplicated': dup_a}
    rep.data['to_bob'] = {'sent': len(want_bob), 'received': sum(got_bob.values()), 'lost': lost_b,
                          'duplicated': dup_b}
    rep.must("no message to alice is lost across the drop", not lost_a, 'XEP-0198 §5 (unacknowledged stanzas resent)',
             [], lost_a)
    rep.must("no message to alice is duplicated", not dup_a, 'XEP-0198 §5 (acknowledged stanzas not resent)', {},
             dup_a)
    rep.must("no message from alice is lost", not lost_b, 'XEP-0198 §5', [], lost_b)
    rep.must("no message from alice is duplicated", not dup_b, 'XEP-0198 §5', {}, dup_b)
    order = [m['body'] for m in alice.events['message'] if m['body'].startswith('bob burst1')]
    rep.must("bob's first burst arrives in order", order == sorted(set(order), key=burst.index),
             'RFC 6120 10.1 (in-order processing)', burst, order)

    # The session works on: a ping and a message both ways.
    m = alice.emark('message')
    bob.send_message(full, 'after %s' % n)
    rep.must('the resumed session still gets messages', await alice.try_wait_event(
        'message', lambda x: x['body'] == 'after %s' % n, 'a message after resumption', m) is not None,
        'XEP-0198 §5', 'after %s' % n, None)


if __name__ == '__main__':
    main('xep0198_sm', body, description=__doc__.splitlines()[0])
