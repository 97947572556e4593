#!/usr/bin/python3
"""Scenario 3: mutual subscription, then presence both ways.

alice and bob (no prior relation; both request the roster and are
available with show and status) subscribe to each other and approve. After
each approval the new subscriber gets the contact's current presence with
its show and status (RFC 6121 3.1.5); both rosters end in 'both'. Presence
updates reach the other side with show and status (4.4.2), an explicit
unavailable with its status too (4.5.2). bob logs out and in again: alice
sees his new initial presence and he gets alice's current presence (4.2.2,
4.3.2). bob's final logout (a closed stream) makes alice see bob's
resource unavailable (4.5.3).
"""

from common import Client, Failed, is_presence, main, nonce, presence_summary, reset_relations


async def body(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'mutual-' + n).connect(
        roster=True, presence={'show': 'dnd', 'status': 'alice initial ' + n})
    bob = await Client(cfg, cfg.user('bob'), 'mutual-' + n).connect(
        roster=True, presence={'show': 'away', 'status': 'bob initial ' + n})
    await reset_relations(alice, bob)

    async def expect_presence(who, frm, show, status, what, rfc, since, typ=None):
        el = await who.try_wait_for(
            lambda e: is_presence(typ, full=frm.full)(e) and presence_summary(e)['show'] == show
            and presence_summary(e)['status'] == status, what, since)
        got = [presence_summary(e) for e in who.stanzas[since:] if is_presence(typ, frm=frm.bare)(e)]
        rep.must('%s sees %s' % (who.label, what), el is not None, rfc,
                 {'from': frm.full, 'type': typ, 'show': show, 'status': status}, got)

    async def subscribe(user, contact, contact_show, contact_status):
        mu, mc = user.mark(), contact.mark()
        user.send_presence(to=contact.bare, type='subscribe')
        req = await contact.try_wait_for(is_presence('subscribe', frm=user.bare), 'subscription request', mc)
        rep.must('%s receives the subscription request of %s' % (contact.label, user.label), req is not None,
                 'RFC 6121 3.1.3', 'subscribe from %s' % user.bare, None if req is None else req.get('type'))
        if req is None:
            raise Failed('no subscription request delivered')
        rep.must('the request comes from the bare JID %s' % user.bare, req.get('from') == user.bare,
                 'RFC 6121 3.1.2 (stamped with the bare JID)', user.bare, req.get('from'))
        contact.send_presence(to=user.bare, type='subscribed')
        ok = await user.try_wait_for(is_presence('subscribed', frm=contact.bare), 'approval', mu)
        rep.must('%s receives the approval of %s' % (user.label, contact.label), ok is not None,
                 'RFC 6121 3.1.6', 'subscribed', None)
        await expect_presence(user, contact, contact_show, contact_status,
                              "%s's current presence after approving" % contact.label,
                              'RFC 6121 3.1.5 (current presence sent after approval)', mu)

    await subscribe(alice, bob, 'away', 'bob initial ' + n)
    await subscribe(bob, alice, 'dnd', 'alice initial ' + n)
    ra, rb = await alice.roster_get(), await bob.roster_get()
    rep.must("alice's roster: bob, subscription both", ra.get(bob.bare, {}).get('subscription') == 'both'
             and not ra.get(bob.bare, {}).get('ask'), 'RFC 6121 Appendix A (Both)', 'both', ra.get(bob.bare))
    rep.must("bob's roster: alice, subscription both", rb.get(alice.bare, {}).get('subscription') == 'both'
             and not rb.get(alice.bare, {}).get('ask'), 'RFC 6121 Appendix A (Both)', 'both', rb.get(alice.bare))

    # updates both ways
    m = bob.mark()
    alice.send_presence(show='chat', status='alice update ' + n)
    await expect_presence(bob, alice, 'chat', 'alice update ' + n, "alice's presence update", 'RFC 6121 4.4.2', m)
    m = alice.mark()
    bob.send_presence(show='xa', status='bob update ' + n)
    await expect_presence(alice, bob, 'xa', 'bob update ' + n, "bob's presence update", 'RFC 6121 4.4.2', m)

    # explicit unavailable with a status, then available again
    m = bob.mark()
    alice.send_presence(type='unavailable', status='alice gone ' + n)
    await expect_presence(bob, alice, None, 'alice gone ' + n, "alice's unavailable presence with its status",
                          'RFC 6121 4.5.2', m, typ='unavailable')
    m = bob.mark()
    alice.send_presence(status='alice back ' + n)
    await expect_presence(bob, alice, None, 'alice back ' + n, "alice available again",
                          'RFC 6121 4.2.2 (initial presence broadcast)', m)

    # bob logs out and in again: his initial presence reaches alice, and
    # he gets alice's current presence (4.2.2 broadcast and probes, 4.3.2)
    await bob.close()
    m = alice.mark()
    bob = Client(cfg, cfg.user('bob'), 'again-' + n)
    await bob.connect(roster=True, presence=None)
    mb = bob.mark()
    bob.send_presence(show='away', status='bob again ' + n)
    await expect_presence(alice, bob, 'away', 'bob again ' + n, "bob's initial presence after a new login",
                          'RFC 6121 4.2.2 (initial presence broadcast to subscribers)', m)
    await expect_presence(bob, alice, None, 'alice back ' + n, "alice's current presence at his new login",
                          'RFC 6121 4.2.2 (probes on initial presence), 4.3.2', mb)

    # bob logs out: alice sees his resource go unavailable
    m = alice.mark()
    bob_full = bob.full
    await bob.close()
    el = await alice.try_wait_for(is_presence('unavailable', full=bob_full), 'unavailable from ' + bob_full, m)
    rep.must('alice sees bob unavailable after his logout (</stream:stream>)', el is not None,
             'RFC 6121 4.5.3 (server broadcasts unavailable when the stream ends)',
             "<presence type='unavailable' from='%s'/>" % bob_full,
             [presence_summary(e) for e in alice.stanzas[m:] if is_presence(None, frm=bob.bare)(e)
              or is_presence('unavailable', frm=bob.bare)(e)])
    await alice.close()


if __name__ == '__main__':
    main('mutual-presence', body)
