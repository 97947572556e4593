#!/usr/bin/python3
"""OMEMO-style PEP (XEP-0163) with slixmpp's xep_0060, xep_0163 and xep_0115.

What an OMEMO client (XEP-0384 0.3, the eu.siacs.conversations.axolotl
namespace Gajim and Conversations use) asks of a server's PEP service,
done the way nbxmpp (Gajim) does it: every publish carries publish-options
(XEP-0060 §7.1.5, a form of FORM_TYPE
http://jabber.org/protocol/pubsub#publish-options) with
pubsub#persist_items=true and pubsub#access_model=open, item id 'current'.

Three accounts: alice publishes; bob is her mutual contact; carol is a
stranger (no subscription either way). bob and carol load xep_0163 and
call add_interest() for the device list node, so the <c/> their xep_0115
puts in their presence hashes a disco#info with
'eu.siacs.conversations.axolotl.devicelist+notify'.

--phase publish (or all):
- alice publishes her device list (node ...devicelist) and the bundle of
  device D1 (node ...bundles:D1, also pubsub#max_items=max) with
  access_model=open: both accepted;
- bob/live, online with +notify, gets the device list as a headline event
  from alice's bare JID (XEP-0163 §4.3); it gets no bundle event (no
  interest in that node), and neither does a bob resource without caps;
- carol, a stranger, fetches the bundle and the device list with
  get_items (max_items=1, as nbxmpp asks): both returned, payload intact;
  she gets no event at all, though she advertises +notify;
- the bundle of device D2, published with access_model=presence (nbxmpp's
  public=False), is returned to bob but refused to carol: not-authorized
  with presence-subscription-required (XEP-0060 §6.5.9);
- alice republishing the device list with access_model=presence (the
  node is open) is refused: conflict with precondition-not-met (§7.1.5),
  and changes nothing: no event, carol still reads the old list;
- republishing D1 with the same options (max_items=max included) and a new
  payload is accepted, and carol reads the new one;
- nbxmpp's force_node_options: for D3, published with access_model=
  presence, a publish with access_model=open meets precondition-not-met;
  alice reconfigures the node (pubsub#owner configure) and publishes
  again: accepted, and carol can fetch D3;
- bob/fresh, a new bob resource with +notify that logs in after all this,
  is sent the last published device list on its presence (XEP-0163
  §4.3.4), stamped with a XEP-0203 delay.

--phase after-restart (after the server restarted; the items and device
ids come from the publish phase's report, data.state, handed back as
expect.state): carol reads the same bundle and device list, is still
refused D2; alice's nodes keep their configuration (open, persistent,
max_items max); a fresh bob resource with +notify is sent the device list.
--phase all runs both without a restart in between.

Synchronisation: after a +notify client's initial presence, a round trip
to the server; a disco#info query the server sent for its caps has then
arrived, and the client's answer (slixmpp's, seen on the way out) is
followed by another round trip: the server then knows its interests.
Absence of an event is checked after alice's next round trip (the server
notifies before handling her next request) and the receiver's own.
"""

import base64
import os
import xml.etree.ElementTree as ET

import pepcommon
from common import Failed, NS_CLIENT, call, el_str, error_condition, error_type, mutual, q
from pepcommon import (NS_EVENT, NS_PUBSUB, PUBLISH_OPTIONS, app_condition, error_summary, form, is_true,
                       node_config, pubsub_items, run_phases, sent, settle)

NS_AXOLOTL = 'eu.siacs.conversations.axolotl'
DEVICELIST = NS_AXOLOTL + '.devicelist'
BUNDLES = NS_AXOLOTL + '.bundles'
NS_DELAY = 'urn:xmpp:delay'
NODE_CONFIG = NS_PUBSUB + '#node_config'

XEP_OMEMO = 'XEP-0384 0.3 (eu.siacs.conversations.axolotl: device list, bundles)'


# -- payloads


def device_id():
    """An OMEMO device id: a random 31-bit integer."""
    return int.from_bytes(os.urandom(4), 'big') & 0x7fffffff or 1


def devicelist_xml(ids):
    return "<list xmlns='%s'>%s</list>" % (NS_AXOLOTL, ''.join("<device id='%d'/>" % i for i in ids))


def b64(n):
    return base64.b64encode(os.urandom(n)).decode()


def bundle_xml():
    """A bundle shaped as OMEMO's (the keys are random bytes)."""
    pre = ''.join("<preKeyPublic preKeyId='%d'>%s</preKeyPublic>" % (i, b64(33)) for i in range(1, 4))
    return ("<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>%s</signedPreKeyPublic>"
            "<signedPreKeySignature>%s</signedPreKeySignature><identityKey>%s</identityKey>"
            "<prekeys>%s</prekeys></bundle>") % (NS_AXOLOTL, b64(33), b64(64), b64(33), pre)


def norm(el):
    """An element as a comparable structure (prefixes, attribute order and
    whitespace between elements do not matter)."""
    if el is None:
        return None
    if isinstance(el, str):
        el = ET.fromstring(el)
    return [el.tag, sorted(el.attrib.items()), (el.text or '').strip(), [norm(c) for c in el]]


OPEN = {'pubsub#persist_items': 'true', 'pubsub#access_model': 'open'}
PRESENCE = {'pubsub#persist_items': 'true', 'pubsub#access_model': 'presence'}


# -- clients


async def login(cfg, role, resource, interests=(), rep=None):
    """A client with pepcommon's plugins logged in with available presence,
    labelled with its full JID. interests: nodes add_interest() is called
    for before the presence; then any caps query of the server is answered
    before this returns (see the module docstring), and with rep, a must
    check that the caps advertise them."""
    return await pepcommon.login(cfg, role, resource, interests=interests, label=cfg.jid(role) + '/' + resource,
                                 rep=rep)


def events(c, node, since=0):
    """The pubsub event messages about node c received since a mark."""
    out = []
    for el in c.stanzas[since:]:
        if el.tag != q(NS_CLIENT, 'message'):
            continue
        items = el.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'items')))
        if items is not None and items.get('node') == node:
            out.append(el)
    return out


def any_events(c, since=0):
    return [el for el in c.stanzas[since:]
            if el.tag == q(NS_CLIENT, 'message') and el.find(q(NS_EVENT, 'event')) is not None]


def event_item(msg):
    return msg.find('%s/%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'items'), q(NS_EVENT, 'item')))


def payload_of(item):
    if item is None:
        return None
    kids = list(item)
    return kids[0] if kids else None


async def publish(c, node, payload, opts, t):
    """Publish item 'current' with publish-options; (result, error, the
    request's XML)."""
    f = form(c, PUBLISH_OPTIONS, opts) if opts else None
    iq = c.x['xep_0060'].publish(None, node, id='current', payload=ET.fromstring(payload), options=f, timeout=t)
    res, err = await call('publish to %s' % node, iq, t)
    return res, err, sent(c, res, err)


async def fetch(c, owner, node, t):
    """get_items with max_items=1 as nbxmpp asks; (items, error, request)."""
    res, err = await call('items of %s' % node, c.x['xep_0060'].get_items(owner, node, max_items=1, timeout=t), t)
    if res is None:
        return None, err, sent(c, res, err)
    return [{'id': i.get('id'), 'payload': payload_of(i)} for i in pubsub_items(res)], None, sent(c, res, err)


def summary(its):
    return [{'id': i['id'], 'payload': el_str(i['payload'])} for i in its or []]


# -- the phases


async def publish_phase(cfg, rep, n):
    t = cfg.timeout
    st = {'devices': [device_id(), device_id(), device_id()]}
    d1, d2, d3 = st['devices']
    st['devicelist_node'] = DEVICELIST
    for i, d in enumerate(st['devices'], 1):
        st['bundle%d_node' % i] = '%s:%d' % (BUNDLES, d)
    b1, b2, b3 = st['bundle1_node'], st['bundle2_node'], st['bundle3_node']
    st['devicelist'] = devicelist_xml([d1, d2, d3])

    alice = await login(cfg, 'alice', 'omemo-' + n)
    bob = await login(cfg, 'bob', 'live-' + n, interests=(DEVICELIST,), rep=rep)
    plain = await login(cfg, 'bob', 'nocaps-' + n)  # xep_0163 loaded, no interest: no +notify
    carol = await login(cfg, 'carol', 'stranger-' + n, interests=(DEVICELIST,), rep=rep)
    await mutual(alice, bob)
    owner = alice.bare
    for c in (bob, plain, carol):
        c.track('pubsub_publish')
    mb, mp, mc = bob.mark(), plain.mark(), carol.mark()
    eb = bob.emark('pubsub_publish')

    # 1. the device list, open
    res, err, req = await publish(alice, DEVICELIST, st['devicelist'], OPEN, t)
    if not rep.must('alice publishes her device list with publish-options access_model=open', res is not None,
                    'XEP-0060 §7.1.5, XEP-0222, ' + XEP_OMEMO, 'type=result', el_str(err), req):
        raise Failed('the device list could not be published: %s' % el_str(err))
    await bob.try_wait_for(lambda el: events(bob, DEVICELIST, mb) != [], 'the device list event', mb)
    evs = events(bob, DEVICELIST, mb)
    rep.data['live_event'] = el_str(evs[0]) if evs else None
    if rep.must('bob (mutual contact, +notify) gets the device list notification', evs,
                'XEP-0163 §4.3 (notifications to contacts with +notify)',
                'a message with <event><items node=%s>' % DEVICELIST, [el_str(e) for e in bob.stanzas[mb:]], req):
        ev = evs[0]
        item = event_item(ev)
        rep.must('it comes from alice\'s bare JID', (ev.get('from') or '') == owner,
                 'XEP-0163 §4.3.1 (from the account\'s bare JID)', owner, ev.get('from'))
        rep.must('it carries item current with the published list',
                 item is not None and item.get('id') == 'current' and norm(payload_of(item)) == norm(st['devicelist']),
                 'XEP-0060 §7.1.2 (notification with payload), XEP-0163 §4.3', st['devicelist'], el_str(ev))
        rep.should('it is a headline message', ev.get('type') == 'headline',
                   'XEP-0163 §4.3, XEP-0060 pubsub#notification_type (headline)', 'headline', ev.get('type'))
        plug = await bob.try_wait_event('pubsub_publish',
                                        lambda m: m['pubsub_event']['items']['node'] == DEVICELIST,
                                        "slixmpp's pubsub_publish event", eb)
        rep.must("slixmpp's xep_0060 raises pubsub_publish for it", plug is not None, 'XEP-0060 §7.1.2',
                 'pubsub_publish', str(plug) if plug is not None else None)

    # 2. the bundle of D1, open, max_items=max
    st['bundle1'] = bundle_xml()
    opts1 = dict(OPEN, **{'pubsub#max_items': 'max'})
    res, err, req = await publish(alice, b1, st['bundle1'], opts1, t)
    rep.must('alice publishes the bundle of device %d with access_model=open, max_items=max' % d1, res is not None,
             'XEP-0060 §7.1.5, ' + XEP_OMEMO, 'type=result', el_str(err), req)
    await settle(alice, bob, plain, carol)
    rep.should('bob, without interest in the bundle node, gets no bundle notification',
               not events(bob, b1, mb), 'XEP-0163 §4.2 (notification filtering)', [],
               [el_str(e) for e in events(bob, b1, mb)])
    rep.should("bob's resource without caps gets no notification at all", not any_events(plain, mp),
               'XEP-0163 §4.2 (notification filtering)', [], [el_str(e) for e in any_events(plain, mp)])

    # 3. carol, a stranger, fetches the bundle and the device list
    its, err, req = await fetch(carol, owner, b1, t)
    rep.data['carol_bundle'] = summary(its)
    if rep.must('carol (no subscription) fetches the open bundle', its is not None,
                'XEP-0060 §6.5 and §4.5 (access model open), ' + XEP_OMEMO, 'type=result',
                error_summary(err) if err is not None else None, req):
        rep.must('she gets item current with the published bundle',
                 len(its) == 1 and its[0]['id'] == 'current' and norm(its[0]['payload']) == norm(st['bundle1']),
                 'XEP-0060 §6.5.2', [{'id': 'current', 'payload': st['bundle1']}], summary(its), req)
    its, err, req = await fetch(carol, owner, DEVICELIST, t)
    rep.must('carol fetches the open device list', its is not None and len(its) == 1
             and norm(its[0]['payload']) == norm(st['devicelist']), 'XEP-0060 §6.5, §4.5',
             st['devicelist'], summary(its) if its is not None else error_summary(err), req)

    # 4. a presence-access bundle (nbxmpp's public=False)
    st['bundle2'] = bundle_xml()
    res, err, req = await publish(alice, b2, st['bundle2'], PRESENCE, t)
    rep.must('alice publishes the bundle of device %d with access_model=presence' % d2, res is not None,
             'XEP-0060 §7.1.5', 'type=result', el_str(err), req)
    its, err, req = await fetch(carol, owner, b2, t)
    refused = error_summary(err) if err is not None else None
    rep.data['carol_presence_node'] = refused or summary(its)
    if rep.must("carol's fetch of a presence-access node is refused with not-authorized",
                err is not None and error_condition(err) == 'not-authorized',
                'XEP-0060 §6.5.9 (presence subscription required)', 'not-authorized',
                refused or summary(its), req):
        rep.should('with presence-subscription-required', app_condition(err) == 'presence-subscription-required',
                   'XEP-0060 §6.5.9', 'presence-subscription-required', refused, req)
        rep.should('of type auth', error_type(err) == 'auth', 'XEP-0060 §6.5.9', 'auth', refused, req)
    its, err, req = await fetch(bob, owner, b2, t)
    rep.must('bob (subscribed to alice\'s presence) fetches it', its is not None and len(its) == 1
             and norm(its[0]['payload']) == norm(st['bundle2']), 'XEP-0060 §4.5 (access model presence)',
             st['bundle2'], summary(its) if its is not None else error_summary(err), req)

    # 5. a mismatched precondition
    mb2 = bob.mark()
    changed = devicelist_xml([d1])
    res, err, req = await publish(alice, DEVICELIST, changed, PRESENCE, t)
    got = error_summary(err) if err is not None else el_str(res)
    rep.data['precondition'] = got
    if rep.must('republishing the open device list with access_model=presence is refused with conflict',
                err is not None and error_condition(err) == 'conflict',
                'XEP-0060 §7.1.5 (preconditions not met)', 'conflict + precondition-not-met', got, req):
        rep.must('with the application condition precondition-not-met', app_condition(err) == 'precondition-not-met',
                 'XEP-0060 §7.1.5', 'precondition-not-met', got, req)
        rep.should('of type cancel', error_type(err) == 'cancel', 'XEP-0060 §7.1.5', 'cancel', got, req)
    await settle(alice, bob)
    rep.must('the refused publish notifies nobody', not events(bob, DEVICELIST, mb2),
             'XEP-0060 §7.1.5 (the publish fails)', [], [el_str(e) for e in events(bob, DEVICELIST, mb2)], req)
    its, err, req2 = await fetch(carol, owner, DEVICELIST, t)
    rep.must('and changes nothing: carol still reads the open device list as it was',
             its is not None and len(its) == 1 and norm(its[0]['payload']) == norm(st['devicelist']),
             'XEP-0060 §7.1.5', st['devicelist'], summary(its) if its is not None else error_summary(err), req2)

    # 6. the same options again (max_items=max among them) and a new bundle
    st['bundle1'] = bundle_xml()
    res, err, req = await publish(alice, b1, st['bundle1'], opts1, t)
    rep.must('republishing the bundle with the same publish-options (max_items=max) is accepted', res is not None,
             'XEP-0060 §7.1.5 (preconditions met)', 'type=result', error_summary(err) if err is not None else None, req)
    its, err, req = await fetch(carol, owner, b1, t)
    rep.must('carol reads the new bundle', its is not None and len(its) == 1
             and norm(its[0]['payload']) == norm(st['bundle1']), 'XEP-0060 §7.1 (an item with the same id is replaced)',
             st['bundle1'], summary(its) if its is not None else error_summary(err), req)

    # 7. nbxmpp's force_node_options: precondition-not-met, configure, again
    st['bundle3'] = bundle_xml()
    res, err, req = await publish(alice, b3, st['bundle3'], PRESENCE, t)
    rep.must('alice publishes the bundle of device %d with access_model=presence' % d3, res is not None,
             'XEP-0060 §7.1.5', 'type=result', el_str(err), req)
    res, err, req = await publish(alice, b3, st['bundle3'], OPEN, t)
    rep.must('publishing it with access_model=open meets precondition-not-met',
             err is not None and app_condition(err) == 'precondition-not-met', 'XEP-0060 §7.1.5',
             'precondition-not-met', error_summary(err) if err is not None else el_str(res), req)
    cfg3, err = await node_config(alice, b3, t)
    rep.must('alice reads the node configuration', cfg3 is not None, 'XEP-0060 §8.2', 'a node_config form',
             el_str(err))
    if cfg3 is not None:
        rep.must('it says access_model=presence', cfg3.get('pubsub#access_model') == 'presence', 'XEP-0060 §8.2',
                 'presence', cfg3)
    f = form(alice, NODE_CONFIG, OPEN)
    res, err = await call('configure %s' % b3, alice.x['xep_0060'].set_node_config(None, b3, f, timeout=t), t)
    rep.must('alice reconfigures it to access_model=open (as nbxmpp does on precondition-not-met)', res is not None,
             'XEP-0060 §8.2', 'type=result', error_summary(err) if err is not None else None,
             sent(alice, res, err))
    res, err, req = await publish(alice, b3, st['bundle3'], OPEN, t)
    rep.must('the publish with access_model=open is now accepted', res is not None, 'XEP-0060 §7.1.5',
             'type=result', error_summary(err) if err is not None else None, req)
    its, err, req = await fetch(carol, owner, b3, t)
    rep.must('carol fetches the reconfigured bundle', its is not None and len(its) == 1
             and norm(its[0]['payload']) == norm(st['bundle3']), 'XEP-0060 §4.5', st['bundle3'],
             summary(its) if its is not None else error_summary(err), req)

    # 8. a new bob resource is sent the last device list on presence
    await fresh_contact(cfg, rep, 'fresh-' + n, owner, st, 'after the publish')

    # 9. nothing reached carol
    await settle(alice, carol)
    leaked = [el_str(e) for e in any_events(carol, mc)]
    rep.data['carol_events'] = leaked
    rep.must('carol (stranger, +notify) got no notification of any of alice\'s nodes', not leaked,
             'XEP-0163 §4.1 (subscriptions follow presence), XEP-0060 §4.5', [], leaked)
    rep.info('bob/live notifications', [el_str(e) for e in any_events(bob, mb)])
    return st


async def fresh_contact(cfg, rep, resource, owner, st, when):
    """A new bob resource with +notify is sent the last device list (during
    its login or after: every stanza since its connection counts)."""
    fresh = await login(cfg, 'bob', resource, interests=(DEVICELIST,), rep=rep)
    await fresh.try_wait_for(lambda el: events(fresh, DEVICELIST) != [], 'the last device list', 0)
    evs = events(fresh, DEVICELIST)
    ev = evs[0] if evs else None
    rep.data.setdefault('last_published', {})[when] = [el_str(e) for e in evs]
    if rep.must('a bob resource with +notify logging in %s is sent the device list' % when, ev is not None,
                'XEP-0163 §4.3.4 (last published item on presence)', 'a device list event',
                [el_str(e) for e in fresh.stanzas]):
        item = event_item(ev)
        rep.must("from alice's bare JID, item current, the published list",
                 (ev.get('from') or '') == owner and item is not None and item.get('id') == 'current'
                 and norm(payload_of(item)) == norm(st['devicelist']),
                 'XEP-0163 §4.3.1, §4.3.4', st['devicelist'], el_str(ev))
        rep.should('stamped with a delay (XEP-0203)', ev.find(q(NS_DELAY, 'delay')) is not None,
                   'XEP-0163 §4.3.4 (with XEP-0203 delayed delivery)', '<delay/>', el_str(ev))
        await fresh.barrier()
        rep.should('exactly once', len(events(fresh, DEVICELIST)) == 1, 'XEP-0163 §4.3.4', 1,
                   len(events(fresh, DEVICELIST)))
    others = [el_str(e) for e in any_events(fresh) if e not in events(fresh, DEVICELIST)]
    rep.should('and nothing of the nodes it has no interest in', not others, 'XEP-0163 §4.2', [], others)
    await fresh.close()


async def restart_phase(cfg, rep, n, st):
    t = cfg.timeout
    if not st:
        raise Failed('no state from the publish phase (expect.state)')
    alice = await login(cfg, 'alice', 'omemo2-' + n)
    carol = await login(cfg, 'carol', 'stranger2-' + n)
    owner = alice.bare
    for key in ('bundle1', 'devicelist'):
        node = st['%s_node' % key] if key != 'devicelist' else st['devicelist_node']
        its, err, req = await fetch(carol, owner, node, t)
        rep.must('after the restart carol still fetches %s' % node, its is not None and len(its) == 1
                 and its[0]['id'] == 'current' and norm(its[0]['payload']) == norm(st[key]),
                 'XEP-0060 §7.1.5 persist_items, XEP-0222 (persistent)', st[key],
                 summary(its) if its is not None else error_summary(err), req)
    its, err, req = await fetch(carol, owner, st['bundle2_node'], t)
    rep.must('after the restart the presence-access bundle is still refused to carol',
             err is not None and error_condition(err) == 'not-authorized', 'XEP-0060 §6.5.9 (access model kept)',
             'not-authorized', error_summary(err) if err is not None else summary(its), req)
    want = {st['devicelist_node']: {'pubsub#access_model': 'open', 'pubsub#persist_items': True},
            st['bundle1_node']: {'pubsub#access_model': 'open', 'pubsub#persist_items': True, 'pubsub#max_items': 'max'},
            st['bundle3_node']: {'pubsub#access_model': 'open'}}
    for node, exp in want.items():
        vals, err = await node_config(alice, node, t)
        seen = None if vals is None else {k: (is_true(vals.get(k)) if isinstance(v, bool) else vals.get(k))
                                          for k, v in exp.items()}
        rep.must('after the restart %s keeps its configuration' % node, seen == exp,
                 'XEP-0060 §8.2 (node configuration persists)', exp, seen if seen is not None else el_str(err))
    await fresh_contact(cfg, rep, 'fresh2-' + n, owner, st, 'after the restart')


if __name__ == '__main__':
    run_phases('pep_omemo', __doc__, 'publish', publish_phase, restart_phase)
