#!/usr/bin/python3
"""Bookmarks both ways: XEP-0048 (slixmpp's xep_0048 over xep_0049) and XEP-0402.

A server that announces urn:xmpp:bookmarks:1#compat (XEP-0402 §5.3) keeps
one list of rooms: what a legacy client stores in private XML (XEP-0049)
is what a modern client reads as items of the PEP node
urn:xmpp:bookmarks:1, and the other way round. slixmpp 1.8.3 has no
xep_0402 plugin, so the modern client is its xep_0060, publishing as
nbxmpp (Gajim) does: item id = the room's JID, publish-options
pubsub#persist_items=true, pubsub#max_items=max,
pubsub#send_last_published_item=never, pubsub#access_model=whitelist.

Accounts: alice (two sessions: 'legacy' with xep_0048, storage method
xep_0049; 'modern' with xep_0060 and +notify for urn:xmpp:bookmarks:1),
bob (alice's mutual contact, +notify for urn:xmpp:bookmarks:1,
storage:bookmarks and, as the control, http://jabber.org/protocol/tune).

--phase store (or all):
- alice/legacy stores two conferences with xep_0048 set_bookmarks: A
  (name, autojoin, nick, password) and B (name, no autojoin, nick, no
  password);
- alice/modern reads urn:xmpp:bookmarks:1 with get_items: items A and B,
  item id = room JID, <conference/> with the name, autojoin, nick and
  password stored; she should have been notified of them (+notify);
- alice/modern publishes room C as a XEP-0402 item; alice/legacy reads it
  with xep_0048 get_bookmarks (private), A and B still there;
- alice/modern retracts B (notify=true); alice/legacy no longer sees it;
- bob gets an error (or no items) reading alice's urn:xmpp:bookmarks:1 and
  storage:bookmarks nodes and forbidden reading her private XML, and
  receives no bookmarks notification, though a notification of alice's
  tune (a presence-access node he has +notify for, published last) reaches
  him: the control that his interests are known.

--phase after-restart (the rooms from data.state, handed back as
expect.state): alice/legacy still reads A and C through private XML,
alice/modern A and C as XEP-0402 items, bob is still refused.
"""

import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from common import Failed, NS_CLIENT, call, el_str, error_condition, mutual, q
from pepcommon import (NS_EVENT, PUBLISH_OPTIONS, app_condition, error_summary, form, is_true, login, pubsub_items,
                       require_account_feature, run_phases, sent, settle)

NS_BM = 'urn:xmpp:bookmarks:1'
NS_LEGACY = 'storage:bookmarks'
NS_PRIVATE = 'jabber:iq:private'
NS_TUNE = 'http://jabber.org/protocol/tune'
COMPAT = NS_BM + '#compat'

# nbxmpp's publish-options for XEP-0402 (as XEP-0402 asks).
BM_OPTIONS = {'pubsub#persist_items': 'true', 'pubsub#max_items': 'max',
              'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist'}

XEP_COMPAT = 'XEP-0402 §5.3 (compatibility with XEP-0048, #compat), XEP-0411'


# -- helpers


def events(c, nodes, since=0):
    """Pubsub event messages about any of nodes c received since a mark."""
    out = []
    for el in c.stanzas[since:]:
        if el.tag != q(NS_CLIENT, 'message'):
            continue
        ev = el.find(q(NS_EVENT, 'event'))
        if ev is None:
            continue
        if any(k.get('node') in nodes for k in ev):
            out.append(el)
    return out


def room(n, name):
    return '%s-%s@conference.%s' % (name, n, 'bookmarks.example')


def conference_xml(c):
    """A XEP-0402 <conference/> for a room description."""
    el = ET.Element(q(NS_BM, 'conference'))
    if c.get('name'):
        el.set('name', c['name'])
    if c.get('autojoin'):
        el.set('autojoin', 'true')
    for k in ('nick', 'password'):
        if c.get(k):
            ET.SubElement(el, q(NS_BM, k)).text = c[k]
    return el


def norm_room(jid, name, autojoin, nick, password):
    return {'jid': jid, 'name': name or '', 'autojoin': bool(autojoin), 'nick': nick or '', 'password': password or ''}


def want_room(c):
    return norm_room(c['jid'], c.get('name'), c.get('autojoin'), c.get('nick'), c.get('password'))


async def items_0402(c, owner, t):
    """alice's urn:xmpp:bookmarks:1 items read with xep_0060 get_items:
    ({room jid: normalised conference}, raw items, error, request)."""
    res, err = await call('items of %s' % NS_BM, c.x['xep_0060'].get_items(owner, NS_BM, timeout=t), t)
    req = sent(c, res, err)
    if res is None:
        return None, None, err, req
    out, raw = {}, []
    for it in pubsub_items(res):
        raw.append(el_str(it))
        cf = it.find(q(NS_BM, 'conference'))
        if cf is None:
            out[it.get('id')] = None
            continue
        nick, pw = cf.find(q(NS_BM, 'nick')), cf.find(q(NS_BM, 'password'))
        out[it.get('id')] = norm_room(it.get('id'), cf.get('name'), is_true(cf.get('autojoin')),
                                      nick.text if nick is not None else '', pw.text if pw is not None else '')
    return out, raw, None, req


async def private_bookmarks(c, t):
    """alice's conferences read with xep_0048 get_bookmarks (private XML):
    ({room jid: normalised conference}, the answer, error, request)."""
    res, err = await call('get_bookmarks', c.x['xep_0048'].get_bookmarks(method='xep_0049', timeout=t), t)
    req = sent(c, res, err)
    if res is None:
        return None, None, err, req
    out = {}
    for conf in res['private']['bookmarks']['conferences']:
        j = str(conf['jid'])
        out[j] = norm_room(j, conf['name'], conf['autojoin'], conf['nick'], conf['password'])
    return out, el_str(res), None, req


def check_rooms(rep, what, got, want, xep, observed, req):
    """must: got (by jid) holds exactly want's rooms, each as described."""
    exp = {c['jid']: want_room(c) for c in want}
    ok = got is not None and set(got) == set(exp)
    rep.must('%s: exactly %s' % (what, ', '.join(sorted(c['label'] for c in want))), ok, xep,
             sorted(exp), observed, req)
    for c in want:
        g = (got or {}).get(c['jid'])
        if g is not None or ok:
            rep.must('%s: %s has its name, autojoin, nick and password' % (what, c['label']), g == exp[c['jid']],
                     xep, exp[c['jid']], g, req)


async def bob_refused(rep, bob, owner, t, when):
    """bob reads alice's bookmarks three ways and is refused."""
    for node in (NS_BM, NS_LEGACY):
        res, err = await call('items of %s' % node, bob.x['xep_0060'].get_items(owner, node, timeout=t), t)
        req = sent(bob, res, err)
        n_items = None if res is None else len(pubsub_items(res))
        got = error_summary(err) if err is not None else el_str(res)
        rep.data.setdefault('bob_reads', {})['%s %s' % (when, node)] = got
        rep.must('%s bob (contact) reading alice\'s %s node gets an error or no items' % (when, node),
                 err is not None or n_items == 0,
                 'XEP-0402 (publish-options: access_model whitelist), XEP-0060 §6.5.10, XEP-0223',
                 'an error (not-allowed + closed-node) or no items', got, req)
        if err is not None:
            rep.should('%s with not-allowed and closed-node' % when,
                       error_condition(err) == 'not-allowed' and app_condition(err) == 'closed-node',
                       'XEP-0060 §6.5.10 (entity not on whitelist)', 'not-allowed + closed-node', got, req)
    payload = "<query xmlns='%s'><storage xmlns='%s'/></query>" % (NS_PRIVATE, NS_LEGACY)
    try:
        el = await bob.iq('get', payload, to=owner)
        got, cond = el_str(el), ''
    except IqError as e:
        got, cond = error_summary(e.iq), error_condition(e.iq)
    rep.data.setdefault('bob_reads', {})['%s private' % when] = got
    rep.must('%s bob reading alice\'s private XML bookmarks gets forbidden' % when, cond == 'forbidden',
             'XEP-0049 (one\'s own private data only)', 'forbidden', got, payload)


# -- the phases


async def store_phase(cfg, rep, n):
    t = cfg.timeout
    st = {'rooms': {
        'A': {'label': 'A', 'jid': room(n, 'council'), 'name': 'Council of Oberon ' + n, 'autojoin': True,
              'nick': 'Puck', 'password': 's3cret-' + n},
        'B': {'label': 'B', 'jid': room(n, 'tea'), 'name': 'Tea ' + n, 'autojoin': False, 'nick': 'Titania'},
        'C': {'label': 'C', 'jid': room(n, 'theplay'), 'name': "The Play's the Thing " + n, 'autojoin': True,
              'nick': 'JC'},
    }}
    A, B, C = (st['rooms'][k] for k in 'ABC')

    modern = await login(cfg, 'alice', 'modern-' + n, (), interests=(NS_BM,))
    legacy = await login(cfg, 'alice', 'legacy-' + n, ('xep_0048',), presence=False)
    bob = await login(cfg, 'bob', 'contact-' + n, (), interests=(NS_BM, NS_LEGACY, NS_TUNE))
    owner = modern.bare
    await require_account_feature(rep, modern, t, COMPAT, XEP_COMPAT)
    await mutual(modern, bob)
    mm, mb = modern.mark(), bob.mark()

    # 1. XEP-0048 over XEP-0049 → XEP-0402
    bm = legacy.x['xep_0048'].stanza.Bookmarks()
    for c in (A, B):
        bm.add_conference(c['jid'], c.get('nick'), name=c['name'], autojoin=c['autojoin'], password=c.get('password'))
    res, err = await call('set_bookmarks', legacy.x['xep_0048'].set_bookmarks(bm, method='xep_0049', timeout=t), t)
    req = sent(legacy, res, err)
    rep.data['private_set'] = req
    if not rep.must('alice/legacy stores A and B with xep_0048 set_bookmarks (private XML)', res is not None,
                    'XEP-0048 (storage via XEP-0049)', 'type=result', error_summary(err) if err else None, req):
        raise Failed('the private XML set failed: %s' % el_str(err))
    got, raw, err, req = await items_0402(modern, None, t)
    rep.data['items_after_private_set'] = raw
    check_rooms(rep, 'alice/modern reads urn:xmpp:bookmarks:1 after the private XML set', got, [A, B],
                XEP_COMPAT + ', XEP-0402 (item id = the room JID)',
                raw if raw is not None else error_summary(err), req)
    await settle(legacy, modern)
    evs = events(modern, (NS_BM,), mm)
    ids = sorted({it.get('id') for e in evs for it in e.iter(q(NS_EVENT, 'item'))})
    rep.should('alice/modern (+notify) was notified of A and B', ids == sorted([A['jid'], B['jid']]),
               'XEP-0402 Bookmark Notifications (to the account\'s +notify resources), ' + XEP_COMPAT,
               sorted([A['jid'], B['jid']]), [el_str(e) for e in evs])

    # 2. XEP-0402 → XEP-0048
    mm = modern.mark()
    f = form(modern, PUBLISH_OPTIONS, BM_OPTIONS)
    res, err = await call('publish C', modern.x['xep_0060'].publish(None, NS_BM, id=C['jid'], payload=conference_xml(C),
                                                                     options=f, timeout=t), t)
    req = sent(modern, res, err)
    rep.data['publish_0402'] = req
    if not rep.must('alice/modern publishes C as a XEP-0402 item with nbxmpp\'s publish-options', res is not None,
                    'XEP-0402 (Adding a bookmark: publish-options), XEP-0060 §7.1.5', 'type=result',
                    error_summary(err) if err else None, req):
        raise Failed('the XEP-0402 publish failed: %s' % el_str(err))
    got, raw, err, req = await private_bookmarks(legacy, t)
    rep.data['private_after_publish'] = raw
    check_rooms(rep, 'alice/legacy reads private XML after the XEP-0402 publish', got, [A, B, C], XEP_COMPAT,
                raw if raw is not None else error_summary(err), req)

    # 3. a XEP-0402 retraction → XEP-0048
    res, err = await call('retract B', modern.x['xep_0060'].retract(None, NS_BM, B['jid'], notify=True, timeout=t), t)
    req = sent(modern, res, err)
    rep.must('alice/modern retracts B (notify=true)', res is not None, 'XEP-0402 (Removing a bookmark), XEP-0060 §7.2',
             'type=result', error_summary(err) if err else None, req)
    got, raw, err, req = await private_bookmarks(legacy, t)
    rep.data['private_after_retract'] = raw
    check_rooms(rep, 'alice/legacy reads private XML after the retraction of B', got, [A, C], XEP_COMPAT,
                raw if raw is not None else error_summary(err), req)
    await settle(legacy, modern)
    retracts = [r.get('id') for e in events(modern, (NS_BM,), mm) for r in e.iter(q(NS_EVENT, 'retract'))]
    rep.should('alice/modern (+notify) was notified of the retraction of B', B['jid'] in retracts,
               'XEP-0402 Bookmark Notifications (retraction, notify=true), XEP-0060 §7.2.2', B['jid'],
               [el_str(e) for e in events(modern, (NS_BM,), mm)])

    # 4. bob
    await bob_refused(rep, bob, owner, t, 'before the restart:')
    # The control: a notification of a node bob has +notify for reaches him.
    res, err = await call('publish a tune', modern.x['xep_0060'].publish(
        None, NS_TUNE, id='current',
        payload=ET.fromstring("<tune xmlns='%s'><title>Ill met by moonlight %s</title></tune>" % (NS_TUNE, n)),
        timeout=t), t)
    rep.must('control: alice publishes her tune (default access model)', res is not None, 'XEP-0118, XEP-0163 §4.3',
             'type=result', error_summary(err) if err else None, sent(modern, res, err))
    ctl = await bob.try_wait_for(lambda el: events(bob, (NS_TUNE,), mb) != [], 'the tune event', mb)
    rep.must('control: bob (contact, +notify) gets alice\'s tune notification, so his interests are known',
             ctl is not None, 'XEP-0163 §4.3 (notifications to contacts with +notify)', 'a tune event',
             [el_str(e) for e in bob.stanzas[mb:]])
    await settle(legacy, modern, bob)
    leaked = [el_str(e) for e in events(bob, (NS_BM, NS_LEGACY), mb)]
    rep.data['bob_bookmark_events'] = leaked
    rep.must('bob (contact, +notify) got no notification of alice\'s bookmarks', not leaked,
             'XEP-0402 (whitelist: only the owner), XEP-0223', [], leaked)
    st['owner'] = owner
    return st


async def restart_phase(cfg, rep, n, st):
    t = cfg.timeout
    if not st or 'rooms' not in st:
        raise Failed('no state from the store phase (expect.state)')
    A, C = st['rooms']['A'], st['rooms']['C']
    legacy = await login(cfg, 'alice', 'legacy2-' + n, ('xep_0048',), presence=False)
    modern = await login(cfg, 'alice', 'modern2-' + n, (), presence=False)
    bob = await login(cfg, 'bob', 'contact2-' + n, ())
    got, raw, err, req = await private_bookmarks(legacy, t)
    rep.data['private_after_restart'] = raw
    check_rooms(rep, 'after the restart alice/legacy reads private XML', got, [A, C],
                XEP_COMPAT + ', XEP-0049 (persistent storage)', raw if raw is not None else error_summary(err), req)
    got, raw, err, req = await items_0402(modern, None, t)
    rep.data['items_after_restart'] = raw
    check_rooms(rep, 'after the restart alice/modern reads urn:xmpp:bookmarks:1', got, [A, C],
                'XEP-0402 (pubsub#persist_items=true)', raw if raw is not None else error_summary(err), req)
    await bob_refused(rep, bob, st.get('owner') or modern.bare, t, 'after the restart:')


if __name__ == '__main__':
    run_phases('bookmarks', __doc__, 'store', store_phase, restart_phase)
