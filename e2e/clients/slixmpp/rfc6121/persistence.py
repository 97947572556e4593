#!/usr/bin/python3
"""Scenario 11: acknowledged data survives SIGKILL of the server.

Phase "prepare" (bob and carol offline): alice adds bob to her roster with
a name and a group and gets the IQ result (RFC 6121 2.3.2: the server
answers once the item is stored); sends bob a chat message (stored
offline); subscribes to carol (a pending request, 3.1.3: kept until carol
is available). Each is followed by a round trip. The driver then kills the
server with SIGKILL and starts it again.

Phase "verify": alice's roster still holds bob (name, group, subscription
none) and carol (ask='subscribe'); bob logs in and gets the message once,
with a delay stamp; carol logs in and gets alice's subscription request.

The phases share data through the "state" file of the configuration.
"""

from common import (Client, Failed, el_str, is_message, is_presence, load_state, main, nonce,
                    reset_relations, save_state, NS_DELAY, q)


async def prepare(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'persist-' + n).connect(roster=True, presence={})
    bob_user, carol_user = cfg.user('bob'), cfg.user('carol')
    # a clean slate for repeated runs against a long-lived server
    for u in (bob_user, carol_user):
        c = await Client(cfg, u, 'setup-' + n).connect(roster=True)
        await reset_relations(alice, c)
        await c.close()
    name, group = 'Bobby ' + n, 'Friends ' + n
    cond = await alice.roster_set(bob_user['jid'], name=name, groups=[group])
    rep.must('alice adds bob (name, group): IQ result', cond is None, 'RFC 6121 2.3.2', 'result', cond or 'result')
    text = 'kept across a crash ' + n
    alice.send_message(bob_user['jid'], text, mtype='chat')
    alice.send_presence(to=carol_user['jid'], type='subscribe')
    await alice.barrier()
    roster = await alice.roster_get()
    rep.info('alice\'s roster before the crash', roster)
    save_state(cfg, {'nonce': n, 'name': name, 'group': group, 'text': text})
    await alice.close()


async def verify(cfg, rep, args):
    st = load_state(cfg)
    n = st['nonce']
    bob_user, carol_user = cfg.user('bob'), cfg.user('carol')
    alice = await Client(cfg, cfg.user('alice'), 'persist2-' + n).connect(roster=True, presence={})
    roster = await alice.roster_get()
    bob, carol = bob_user['jid'].lower(), carol_user['jid'].lower()
    it = roster.get(bob)
    want = {'subscription': 'none', 'ask': None, 'name': st['name'], 'groups': [st['group']]}
    rep.must("alice's roster item for bob survived SIGKILL", it is not None and
             {k: it.get(k) for k in want} == want, 'RFC 6121 2.3.2 (stored before the result)', want, it,
             "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='%s' name='%s'><group>%s</group></item></query></iq>"
             % (bob, st['name'], st['group']))
    it = roster.get(carol)
    rep.must("alice's pending request to carol survived SIGKILL (item with ask='subscribe')",
             it is not None and it.get('subscription') == 'none' and it.get('ask') == 'subscribe',
             'RFC 6121 3.1.2, 3.1.3', {'subscription': 'none', 'ask': 'subscribe'}, it,
             "<presence type='subscribe' to='%s'/>" % carol)

    b = await Client(cfg, bob_user, 'persist-' + n).connect(roster=True, presence=None)
    m = b.mark()
    b.send_presence()
    msg = await b.try_wait_for(is_message(body=st['text']), 'the offline message', m)
    await b.barrier()
    got = b.received(is_message(body=st['text']), m)
    rep.must('bob receives the offline message once after SIGKILL and restart', len(got) == 1,
             'XEP-0160 / RFC 6121 8.5.2.2.1', 1, len(got), "<message type='chat' to='%s'>" % bob)
    if msg is not None:
        rep.must('the offline message carries a delay stamp', msg.find(q(NS_DELAY, 'delay')) is not None,
                 'XEP-0203 / XEP-0160', 'delay', el_str(msg))
    await b.close()

    c = await Client(cfg, carol_user, 'persist-' + n).connect(roster=True, presence=None)
    m = c.mark()
    c.send_presence()
    req = await c.try_wait_for(is_presence('subscribe', frm=alice.bare), "alice's subscription request", m)
    rep.must("carol receives alice's pending subscription request after SIGKILL and restart", req is not None,
             'RFC 6121 3.1.3', 'subscribe from %s' % alice.bare, None, "<presence type='subscribe' to='%s'/>" % carol)
    await c.close()
    await alice.close()


async def body(cfg, rep, args):
    if args.phase == 'prepare':
        await prepare(cfg, rep, args)
    elif args.phase == 'verify':
        await verify(cfg, rep, args)
    else:
        raise Failed('unknown phase %r' % args.phase)


def add_args(p):
    p.add_argument('phase', choices=('prepare', 'verify'))


if __name__ == '__main__':
    main('persistence', body, add_args)
