#!/usr/bin/python3
"""Scenario 8: offline messages survive a server restart.

Phase "send": alice sends three chat messages to bob, who is offline (no
resource), and makes sure the server handled them (a round trip, and no
error came back). The driver then restarts the server (SIGTERM and start,
or SIGKILL and start).

Phase "receive": bob logs in and sends initial presence; he gets each
message exactly once and in the order sent, each with a XEP-0203
<delay xmlns='urn:xmpp:delay' stamp='...'/> (stamp between the send time
and now) and a XEP-0359 <stanza-id xmlns='urn:xmpp:sid:0' by='bob@...'/>;
from is alice's full JID as sent. A second login of bob gets none of them
again (XEP-0160: delivered messages are removed from offline storage).

The phases share data through the "state" file of the configuration.
"""

import datetime
import time

from common import (NS_DELAY, NS_SID, Client, Failed, body_of, el_str, error_condition,
                    is_message, load_state, main, nonce, q, save_state)

COUNT = 3


def parse_stamp(s):
    try:
        return datetime.datetime.fromisoformat((s or '').replace('Z', '+00:00')).timestamp()
    except ValueError:
        return None


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()


async def send_phase(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'offline-' + n).connect(roster=True, presence={})
    bob = cfg.jid('bob')
    m = alice.mark()
    sent_at = time.time()
    bodies, ids = [], []
    for i in range(COUNT):
        text = 'offline message %d of %d %s' % (i + 1, COUNT, n)
        ids.append(alice.send_message(bob, text, mtype='chat'))
        bodies.append(text)
    await alice.barrier()
    errors = [error_condition(e) for e in alice.stanzas[m:] if is_message()(e) and e.get('type') == 'error']
    rep.must('no error is returned for messages to an offline account', not errors,
             'RFC 6121 8.5.2.2.1 / XEP-0160 (stored for later delivery)', [], errors,
             "<message type='chat' to='%s'> x%d while bob is offline" % (bob, COUNT))
    save_state(cfg, {'bodies': bodies, 'ids': ids, 'sent_at': sent_at, 'from': alice.full, 'nonce': n})
    rep.data.update({'bodies': bodies, 'from': alice.full})
    await alice.close()


async def receive_phase(cfg, rep, args):
    st = load_state(cfg)
    bodies = st['bodies']
    bob_user = cfg.user('bob')
    bob = await Client(cfg, bob_user, 'inbox-' + st['nonce']).connect(roster=True, presence=None)
    m = bob.mark()
    bob.send_presence()
    last = await bob.try_wait_for(is_message(body=bodies[-1]), 'the last offline message', m)
    await bob.barrier()
    got = [e for e in bob.stanzas[m:] if is_message()(e) and body_of(e) in bodies]
    order = [body_of(e) for e in got]
    stanza = '%d chat messages from %s to %s sent while bob was offline, then a server restart' % (
        len(bodies), st['from'], bob_user['jid'])
    rep.must('bob receives every stored message after the restart', last is not None and set(order) == set(bodies),
             'XEP-0160 / RFC 6121 8.5.2.2.1', bodies, order, stanza)
    rep.must('each exactly once', all(order.count(b) == 1 for b in bodies), 'XEP-0160', bodies, order, stanza)
    rep.must('in the order sent', order == bodies, 'RFC 6120 10.1 (in-order processing), issue #4', bodies, order, stanza)
    now = time.time()
    for e in got:
        d = e.find(q(NS_DELAY, 'delay'))
        stamp = None if d is None else parse_stamp(d.get('stamp'))
        rep.must("'%s' carries <delay xmlns='urn:xmpp:delay' stamp=.../>" % body_of(e),
                 stamp is not None and st['sent_at'] - 2 <= stamp <= now + 2,
                 'XEP-0160 / XEP-0203',
                 'a stamp between %s and %s' % (iso(st['sent_at'] - 2), iso(now + 2)),
                 el_str(e), stanza)
        sids = [s for s in e.findall(q(NS_SID, 'stanza-id'))]
        rep.must("'%s' carries <stanza-id xmlns='urn:xmpp:sid:0' by='%s'/>" % (body_of(e), bob.bare),
                 len(sids) == 1 and (sids[0].get('by') or '').lower() == bob.bare and sids[0].get('id'),
                 'XEP-0359 (issue #4)', "one stanza-id with by='%s' and an id" % bob.bare, el_str(e), stanza)
        rep.must("'%s' is from %s" % (body_of(e), st['from']), e.get('from') == st['from'],
                 'RFC 6120 8.1.2.1 (from stamped by the sender\'s server)', st['from'], e.get('from'), stanza)
    await bob.close()

    again = await Client(cfg, bob_user, 'again-' + st['nonce']).connect(roster=True, presence={})
    await again.barrier()
    dup = [body_of(e) for e in again.stanzas if is_message()(e) and body_of(e) in bodies]
    rep.must('a second login of bob gets none of them again', not dup, 'XEP-0160 (removed once delivered)',
             [], dup, stanza)
    await again.close()


async def body(cfg, rep, args):
    if args.phase == 'send':
        await send_phase(cfg, rep, args)
    elif args.phase == 'receive':
        await receive_phase(cfg, rep, args)
    else:
        raise Failed('unknown phase %r' % args.phase)


def add_args(p):
    p.add_argument('phase', choices=('send', 'receive'))


if __name__ == '__main__':
    main('offline-delay', body, add_args)
