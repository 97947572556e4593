#!/usr/bin/python3
"""Scenario 10: watcher information lists a fetcher and a refused watcher.

bob subscribes to alice and alice approves; bob then probes alice once
(answered with alice's presence, RFC 6121 4.3.2) and is recorded as a
FETCHER (RFC 2778 2.1); carol, not subscribed, probes alice and is
recorded as refused. alice runs the XEP-0050 command urn:imppd:watcher-info
on the server with slixmpp's xep_0050 plugin; the result form has one item
per watcher and kind with the fields watcher, kind, count, first, last.
bob running the same command sees his own watchers only (VISIBILITY RULES).

This is imppd's extension: against a server without the command the
watcher checks are reported as not applicable unless the configuration
sets "require_watcher_info".
"""

import datetime

from common import (Client, Failed, is_presence, main, nonce, presence_summary, reset_relations, watcher_info,
                    WATCHER_INFO_FIELDS)


def parse_time(s):
    try:
        return datetime.datetime.fromisoformat((s or '').replace('Z', '+00:00'))
    except ValueError:
        return None


async def body(cfg, rep, args):
    n = nonce()
    status = 'alice for watchers ' + n
    alice = await Client(cfg, cfg.user('alice'), 'wi-' + n, plugins=('xep_0050',)).connect(
        roster=True, presence={'status': status})
    bob = await Client(cfg, cfg.user('bob'), 'wi-' + n, plugins=('xep_0050',)).connect(roster=True, presence={})
    carol = await Client(cfg, cfg.user('carol'), 'wi-' + n).connect(roster=True, presence={})
    await reset_relations(alice, bob, carol)

    before, _ = await watcher_info(alice)  # a baseline, for long-lived servers

    ma, mb = alice.mark(), bob.mark()
    bob.send_presence(to=alice.bare, type='subscribe')
    if await alice.try_wait_for(is_presence('subscribe', frm=bob.bare), 'request', ma) is None:
        raise Failed('alice got no subscription request from bob')
    alice.send_presence(to=bob.bare, type='subscribed')
    if await bob.try_wait_for(is_presence('subscribed', frm=alice.bare), 'approval', mb) is None:
        raise Failed('bob got no approval from alice')
    await bob.barrier()

    mb = bob.mark()
    bob.send_presence(to=alice.bare, type='probe')
    got = await bob.try_wait_for(lambda e: is_presence(None, full=alice.full)(e)
                                 and presence_summary(e)['status'] == status, "alice's presence", mb)
    rep.must("bob (a subscriber) gets alice's presence in answer to his probe", got is not None,
             'RFC 6121 4.3.2', {'from': alice.full, 'status': status},
             [presence_summary(e) for e in bob.stanzas[mb:] if e.tag.endswith('presence')],
             "<presence type='probe' to='%s'/> from bob" % alice.bare)

    mc = carol.mark()
    carol.send_presence(to=alice.bare, type='probe')
    await carol.barrier()
    leaked = [presence_summary(e) for e in carol.stanzas[mc:] if is_presence(None, frm=alice.bare)(e)]
    rep.must("carol (no subscription) gets no available presence of alice", not leaked, 'RFC 6121 4.3.2',
             [], leaked, "<presence type='probe' to='%s'/> from carol" % alice.bare)

    items, raw = await watcher_info(alice)
    rep.data['raw_result'] = raw
    if items is None:
        rep.check('must' if cfg.require_watcher_info else 'info',
                  'alice can run the watcher information command', False,
                  'imppd watcher information (XEP-0050 node urn:imppd:watcher-info)', 'a result form', raw)
        return
    rep.data['items'] = items

    def find(watcher, kind, among=None):
        return [i for i in (items if among is None else among)
                if (i.get('watcher') or '').lower() == watcher and i.get('kind') == kind]

    def total(watcher, kinds, among):
        return sum(int(i.get('count') or 0) for k in kinds for i in find(watcher, k, among))

    for it in items:
        rep.must('item %s/%s has exactly the fields %s' % (it.get('watcher'), it.get('kind'), ', '.join(WATCHER_INFO_FIELDS)),
                 sorted(it) == sorted(WATCHER_INFO_FIELDS), 'issue #4 / xmppmap/watchinfo',
                 sorted(WATCHER_INFO_FIELDS), sorted(it))
        first, last = parse_time(it.get('first')), parse_time(it.get('last'))
        rep.must('item %s/%s: first and last are timestamps, first <= last' % (it.get('watcher'), it.get('kind')),
                 first is not None and last is not None and first <= last, 'XEP-0082 date-time',
                 'first <= last', [it.get('first'), it.get('last')])
        rep.must('item %s/%s: count is a positive integer' % (it.get('watcher'), it.get('kind')),
                 (it.get('count') or '').isdigit() and int(it['count']) >= 1, '', '>= 1', it.get('count'))
    fetches = ('fetcher',)  # imppd counts a poll as a fetch as well
    if not total(bob.bare, fetches, before or []):
        f = find(bob.bare, 'fetcher')
        rep.must('bob is listed as a fetcher, count 1', len(f) == 1 and f[0].get('count') == '1',
                 'RFC 2778 2.1 FETCHER (a probe is a fetch)', {'watcher': bob.bare, 'kind': 'fetcher', 'count': '1'}, items)
    else:  # bob fetched before (a long-lived server): one more fetch
        rep.must("bob's fetches counted once more", total(bob.bare, fetches, items) ==
                 total(bob.bare, fetches, before) + 1, 'RFC 2778 2.1 FETCHER',
                 total(bob.bare, fetches, before) + 1, total(bob.bare, fetches, items))
    rep.must('carol is listed as refused, once more than before',
             len(find(carol.bare, 'refused')) == 1 and
             total(carol.bare, ('refused',), items) == total(carol.bare, ('refused',), before or []) + 1,
             'RFC 2778 WATCHER INFORMATION', {'watcher': carol.bare, 'kind': 'refused'}, items)
    rep.must('carol is not listed as a fetcher', not find(carol.bare, 'fetcher'), 'ACCESS RULES', [], items)
    rep.info('bob listed as subscriber', bool(find(bob.bare, 'subscriber')))

    bitems, braw = await watcher_info(bob)
    watchers = sorted({(i.get('watcher') or '').lower() for i in (bitems or [])})
    rep.must("bob's watcher information does not show alice's watchers", bitems is not None and
             bob.bare not in watchers and carol.bare not in watchers, 'VISIBILITY RULES (owner only)',
             'no bob, no carol', watchers if bitems is not None else braw)
    for c in (carol, bob, alice):
        await c.close()


if __name__ == '__main__':
    main('watcher-info', body)
