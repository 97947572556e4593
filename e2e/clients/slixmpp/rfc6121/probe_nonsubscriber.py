#!/usr/bin/python3
"""Scenario 6: a probe from a non-subscriber reveals nothing.

alice is available with show and status. carol, who has no subscription to
alice, probes alice's bare JID and then alice's full JID. carol must get
no available presence of alice and nothing carrying alice's show or
status (RFC 6121 4.3.2: the server answers a probe only for an entity
authorized to see the presence; it may answer 'unsubscribed'). alice's
watcher information (imppd's XEP-0050 command, when offered) lists carol
as refused.
"""

from common import (NS_CLIENT, Client, el_str, is_presence, main, nonce, presence_summary, q,
                    reset_relations, watcher_info)


async def body(cfg, rep, args):
    n = nonce()
    secret = 'alice secret status ' + n
    alice = await Client(cfg, cfg.user('alice'), 'probed-' + n, plugins=('xep_0050',)).connect(
        roster=True, presence={'show': 'chat', 'status': secret})
    carol = await Client(cfg, cfg.user('carol'), 'prober-' + n).connect(roster=True, presence={})
    await reset_relations(alice, carol)
    for target in (alice.bare, alice.full):
        m = carol.mark()
        stanza = "<presence type='probe' to='%s'/> from carol (no subscription)" % target
        carol.send_presence(to=target, type='probe')
        await carol.barrier()  # the server handled the probe before the ping
        got = [e for e in carol.stanzas[m:] if e.tag == q(NS_CLIENT, 'presence')]
        from_alice = [e for e in got if (e.get('from') or '').lower().startswith(alice.bare)]
        available = [e for e in from_alice if is_presence(None)(e)]
        rep.must('probe of %s: carol receives no available presence of alice' % target, not available,
                 'RFC 6121 4.3.2 (presence is sent only to authorized entities)', [],
                 [presence_summary(e) for e in available], stanza)
        leaked = [e for e in got if secret in el_str(e) or e.find(q(NS_CLIENT, 'show')) is not None
                  and (e.get('from') or '').lower().startswith(alice.bare)]
        rep.must("probe of %s: nothing carol receives carries alice's show or status" % target, not leaked,
                 'RFC 6121 4.3.2', [], [el_str(e) for e in leaked], stanza)
        other = [e for e in from_alice if e.get('type') not in ('unsubscribed',)]
        rep.should('probe of %s: an answer, if any, is type unsubscribed' % target, not other,
                   'RFC 6121 4.3.2', "nothing, or <presence type='unsubscribed'/>",
                   [presence_summary(e) for e in from_alice], stanza)
        rep.info('probe of %s: carol received' % target, [presence_summary(e) for e in from_alice])

    items, raw = await watcher_info(alice)
    if items is None:
        rep.check('must' if cfg.require_watcher_info else 'info',
                  'watcher information (%s) is available to alice' % 'urn:imppd:watcher-info', False,
                  'imppd watcher information (RFC 2778 3, DESIGN.md 2)', 'the command', raw)
    else:
        rep.data['watcher_info'] = items
        refused = [i for i in items if (i.get('watcher') or '').lower() == carol.bare and i.get('kind') == 'refused']
        rep.must("alice's watcher information lists carol as refused", bool(refused),
                 'imppd watcher information (RFC 2778 WATCHER INFORMATION)',
                 {'watcher': carol.bare, 'kind': 'refused'}, items)
        fetched = [i for i in items if (i.get('watcher') or '').lower() == carol.bare
                   and i.get('kind') in ('fetcher', 'poller', 'subscriber')]
        rep.must('carol is not listed as a fetcher, poller or subscriber', not fetched,
                 'imppd watcher information', [], fetched)
    await carol.close()
    await alice.close()


if __name__ == '__main__':
    main('probe-nonsubscriber', body)
