#!/usr/bin/python3
"""XEP-0012 Last Activity with slixmpp's xep_0012 plugin.

alice asks the server for its uptime (§5). alice and bob subscribe to each
other; while bob is online alice's query of his bare JID is answered
(imppd answers 0 seconds for an available account). bob then goes offline
with an unavailable presence carrying a status text: alice's query of his
bare JID returns the seconds since then and that text (§4), and once a
second has passed, seconds >= 1. carol, not subscribed to bob, gets
forbidden (§4: the server MUST NOT reveal it to an entity not authorized to
see bob's presence).

The only wait on the clock is the one §4 requires to observe seconds >= 1
(the attribute counts whole seconds): the scenario waits until a second has
passed since bob's unavailable presence reached alice.
"""

import asyncio
import time

from common import Client, call, el_str, error_condition, error_type, is_presence, main, mutual, nonce

NS = 'jabber:iq:last'


def last_of(iq):
    el = iq.xml.find('{%s}query' % NS)
    if el is None:
        return None
    s = el.get('seconds')
    try:
        secs = int(s)
    except (TypeError, ValueError):
        secs = s
    return {'seconds': secs, 'status': el.text or '', 'parsed_by_slixmpp': iq['last_activity']['seconds']}


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    plugins = ('xep_0012',)
    alice = await Client(cfg, cfg.user('alice'), 'last-' + n, plugins=plugins).connect(roster=True, presence={})
    bob = await Client(cfg, cfg.user('bob'), 'last-' + n, plugins=plugins).connect(roster=True, presence={})
    carol = await Client(cfg, cfg.user('carol'), 'last-' + n, plugins=plugins).connect(roster=True, presence={})
    la = alice.x['xep_0012']

    # -- the server's uptime
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (dom, NS)
    res, err = await call('last activity of the server', la.get_last_activity(dom, timeout=t), t)
    if rep.must('the server answers jabber:iq:last with a result', res is not None, 'XEP-0012 §5 (server uptime)',
                'type=result', el_str(err), stanza):
        got = last_of(res)
        rep.data['server'] = got
        rep.must('the result has a non-negative integer seconds', got and isinstance(got['seconds'], int)
                 and got['seconds'] >= 0, 'XEP-0012 §2 (seconds REQUIRED)', 'seconds >= 0', el_str(res), stanza)

    # -- bob, a contact
    await mutual(alice, bob)
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from alice (mutual subscription)" % (bob.bare, NS)
    res, err = await call('last activity of bob online', la.get_last_activity(bob.bare, timeout=t), t)
    rep.data['online'] = last_of(res) if res is not None else el_str(err)
    rep.should('while bob is online his server answers 0 seconds', res is not None and last_of(res)['seconds'] == 0,
               'XEP-0012 §4 (imppd: 0 while the account has an available resource)', {'seconds': 0},
               rep.data['online'], stanza)

    status = 'gone fishing %s ü' % n
    m = alice.mark()
    bob.send_presence(type='unavailable', status=status)
    await bob.close()
    gone = await alice.try_wait_for(is_presence('unavailable', frm=bob.bare), "bob's unavailable presence", m)
    t0 = time.monotonic()
    rep.must("alice sees bob's unavailable presence", gone is not None, 'RFC 6121 4.5.2', 'unavailable from bob', None)

    res, err = await call('last activity of bob offline', la.get_last_activity(bob.bare, timeout=t), t)
    elapsed = time.monotonic() - t0
    if rep.must("a contact's last activity is answered by his server while he is offline", res is not None,
                'XEP-0012 §4 (offline user query)', 'type=result', el_str(err), stanza):
        got = last_of(res)
        rep.data['offline_first'] = got
        rep.must('the status text is the one of the last unavailable presence', got['status'] == status,
                 'XEP-0012 §4 (the status of the unavailable presence)', status, got['status'], stanza)
        rep.must('seconds counts from the logout', isinstance(got['seconds'], int)
                 and 0 <= got['seconds'] <= elapsed + 1, 'XEP-0012 §4', '0 .. %.1f' % (elapsed + 1),
                 got['seconds'], stanza)

    # -- carol, no subscription to bob
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from carol (no subscription)" % (bob.bare, NS)
    res, err = await call("carol's query of bob", carol.x['xep_0012'].get_last_activity(bob.bare, timeout=t), t)
    rep.must('a requester not allowed to see the presence gets forbidden',
             res is None and error_condition(err) == 'forbidden' and error_type(err) == 'auth',
             'XEP-0012 §4 (MUST return <forbidden/>)', "error type='auth' forbidden",
             el_str(err) if err is not None else el_str(res), stanza)

    # -- a second later: seconds >= 1 (the attribute counts whole seconds)
    left = t0 + 1.1 - time.monotonic()
    if left > 0:
        await asyncio.sleep(left)
    res, err = await call('last activity of bob a second later', la.get_last_activity(bob.bare, timeout=t), t)
    elapsed = time.monotonic() - t0
    if rep.must("the contact's last activity is still answered", res is not None, 'XEP-0012 §4', 'type=result',
                el_str(err), stanza):
        got = last_of(res)
        rep.data['offline_later'] = got
        rep.data['elapsed'] = round(elapsed, 2)
        rep.must('a second after the logout, seconds > 0', isinstance(got['seconds'], int)
                 and 1 <= got['seconds'] <= elapsed + 1, 'XEP-0012 §4 (time since the last logout)',
                 '1 .. %.1f' % (elapsed + 1), got['seconds'], stanza)
        rep.must('the status text is kept', got['status'] == status, 'XEP-0012 §4', status, got['status'], stanza)


if __name__ == '__main__':
    main('xep0012_last', body, description=__doc__.splitlines()[0])
