#!/usr/bin/python3
"""Scenario 4: a subscription request waits for the contact's next login.

bob is offline when alice subscribes to him (any earlier relation between
the two is removed first). alice's roster shows bob with
ask='subscribe' (RFC 6121 3.1.2). bob logs in and requests the roster
(alice is not in it: A.1, no roster item in "None + Pending In"); only
after his initial presence does the stored request arrive (3.1.3: kept
and delivered when the contact next becomes available), once, with the
<status/> alice put in it (3.1.1). bob logs out without answering and in
again: the request comes again (3.1.3). bob approves; alice gets
'subscribed' and a roster with 'to'. bob's next login brings no request
again.
"""

from common import Client, is_presence, main, nonce, presence_summary, reset_relations


async def body(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'pending-' + n).connect(roster=True, presence={})
    bob_user = cfg.user('bob')
    setup = await Client(cfg, bob_user, 'setup-' + n).connect(roster=True)
    await reset_relations(alice, setup)
    await setup.close()
    bob_bare = bob_user['jid'].lower()
    stanza = "<presence to='%s' type='subscribe'><status>please let me see you</status></presence> from alice while bob is offline" % bob_bare
    request_status = 'please let me see you ' + n
    alice.send_raw("<presence to='%s' type='subscribe'><status>%s</status></presence>" % (bob_bare, request_status))
    ra = await alice.roster_get()
    item = ra.get(bob_bare)
    rep.must("alice's roster holds bob with ask='subscribe'",
             item is not None and item['subscription'] == 'none' and item['ask'] == 'subscribe',
             'RFC 6121 3.1.2', {'subscription': 'none', 'ask': 'subscribe'}, item, stanza)

    bob = await Client(cfg, bob_user, 'pending-' + n).connect(roster=False, presence=None)
    rb = await bob.roster_get()
    rep.should("bob's roster does not show alice while her request is pending",
               alice.bare not in rb, 'RFC 6121 Appendix A.1 (None + Pending In: SHOULD NOT push or deliver the item)',
               None, rb.get(alice.bare))
    await bob.barrier()
    early = bob.received(is_presence('subscribe', frm=alice.bare))
    rep.should('bob gets no subscription request before his initial presence', not early,
               'RFC 6121 3.1.3 (requests go to available resources), 4.2', 0, len(early), stanza)
    m = bob.mark()
    bob.send_presence()
    req = await bob.try_wait_for(is_presence('subscribe', frm=alice.bare), 'the stored subscription request', m)
    rep.must("bob receives alice's stored request after his initial presence", req is not None,
             'RFC 6121 3.1.3', 'subscribe from %s' % alice.bare, None, stanza)
    if req is not None:
        st = presence_summary(req)['status']
        rep.should('the stored request keeps its <status/>', st == request_status,
                   'RFC 6121 3.1.1 (a request may carry a status), 3.1.3', request_status, st, stanza)
    await bob.barrier()
    reqs = bob.received(is_presence('subscribe', frm=alice.bare))
    rep.should('the stored request is delivered once', len(reqs) == 1, 'RFC 6121 3.1.3', 1, len(reqs), stanza)

    # bob leaves without answering: the request is still pending and comes
    # again at his next login
    await bob.close()
    bob = await Client(cfg, bob_user, 'pending-again-' + n).connect(roster=True, presence=None)
    m = bob.mark()
    bob.send_presence()
    req = await bob.try_wait_for(is_presence('subscribe', frm=alice.bare), 'the unanswered request', m)
    rep.should('an unanswered request is delivered again at the next login', req is not None,
               'RFC 6121 3.1.3 (pending until the contact approves or denies)', 'subscribe from %s' % alice.bare,
               None, stanza)

    m = alice.mark()
    bob.send_presence(to=alice.bare, type='subscribed')
    ok = await alice.try_wait_for(is_presence('subscribed', frm=bob_bare), 'approval', m)
    rep.must("alice receives bob's approval", ok is not None, 'RFC 6121 3.1.6', 'subscribed', None)
    ra = await alice.roster_get()
    item = ra.get(bob_bare)
    rep.must("alice's roster: bob with subscription 'to', no ask",
             item is not None and item['subscription'] == 'to' and not item['ask'],
             'RFC 6121 3.1.6, Appendix A', {'subscription': 'to', 'ask': None}, item)
    await bob.close()

    bob2 = await Client(cfg, bob_user, 'pending2-' + n).connect(roster=True, presence={})
    await bob2.barrier()
    again = bob2.received(is_presence('subscribe', frm=alice.bare))
    rep.must('an approved request is not delivered again at the next login', not again,
             'RFC 6121 3.1.3, 3.1.5', 0, len(again))
    await bob2.close()
    await alice.close()


if __name__ == '__main__':
    main('pending-at-login', body)
