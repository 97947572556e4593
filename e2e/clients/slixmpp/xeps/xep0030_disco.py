#!/usr/bin/python3
"""XEP-0030 Service Discovery with slixmpp's xep_0030 plugin.

alice asks the server (its domain) for disco#info and disco#items, the
items of the ad-hoc commands node, and an unknown node; then her own
account's bare JID for info and items. bob subscribes to alice's presence
and asks her bare JID too; carol, with no subscription, is refused
(XEP-0030 §8: the server answers for an account only to those allowed to
see its presence, and service-unavailable to others).

expect (optional): "server_identity": [category, type],
"server_features": [...] (each must be advertised by the server),
"account_features": [...] (each by alice's bare JID),
"any_features": [...] (each by the server or the account).
"""

from common import Client, Failed, call, el_str, error_condition, main, nonce

NS_INFO = 'http://jabber.org/protocol/disco#info'
NS_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_COMMANDS = 'http://jabber.org/protocol/commands'


def info_of(iq):
    d = iq['disco_info']
    return {
        'node': d['node'],
        'identities': sorted(['%s/%s' % (i[0], i[1]) for i in d.get_identities(dedupe=False)]),
        'features': list(d.get_features(dedupe=False)),
    }


def items_of(iq):
    return [{'jid': str(i[0]), 'node': i[1], 'name': i[2]} for i in iq['disco_items']['items']]


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    exp = cfg.expect
    alice = await Client(cfg, cfg.user('alice'), 'disco-' + n).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'disco-' + n).connect(presence={})
    carol = await Client(cfg, cfg.user('carol'), 'disco-' + n).connect(presence={})
    d = alice.x['xep_0030']
    dom = cfg.domain

    # -- the server
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (dom, NS_INFO)
    res, err = await call('disco#info to the server', d.get_info(jid=dom, timeout=t), t)
    if not rep.must('the server answers disco#info with a result', res is not None, 'XEP-0030 §3.1',
                    'type=result', el_str(err), stanza):
        raise Failed('no disco#info from the server')
    info = info_of(res)
    rep.data['server_info'] = info
    rep.must('the server has at least one identity', info['identities'], 'XEP-0030 §3.1 (MUST have an identity)',
             'an identity', info['identities'], stanza)
    if exp.get('server_identity'):
        want = '%s/%s' % tuple(exp['server_identity'])
        rep.must('the server identifies as %s' % want, want in info['identities'],
                 'XEP-0030 §3.1, Registrar categories', want, info['identities'], stanza)
    for f in (NS_INFO, NS_ITEMS):
        rep.must('the server advertises %s' % f, f in info['features'], 'XEP-0030 §3.1 / §9',
                 f, info['features'], stanza)
    for f in exp.get('server_features', []):
        rep.must('the server advertises %s' % f, f in info['features'], 'XEP-0030 §3.1 (features of XEPS.md)',
                 f, info['features'], stanza)
    rep.must('no feature is listed twice', len(set(info['features'])) == len(info['features']),
             'XEP-0030 §3.1 / XEP-0115 §5.4', 'distinct features', info['features'], stanza)

    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (dom, NS_ITEMS)
    res, err = await call('disco#items to the server', d.get_items(jid=dom, timeout=t), t)
    rep.must('the server answers disco#items with a result', res is not None, 'XEP-0030 §4.1',
             'type=result', el_str(err), stanza)
    if res is not None:
        rep.data['server_items'] = items_of(res)

    stanza = "<iq type='get' to='%s'><query xmlns='%s' node='%s'/></iq>" % (dom, NS_ITEMS, NS_COMMANDS)
    res, err = await call('disco#items of the commands node', d.get_items(jid=dom, node=NS_COMMANDS, timeout=t), t)
    if rep.must('the server lists the items of node %s' % NS_COMMANDS, res is not None,
                "XEP-0030 §4.2, XEP-0050 'Retrieving the Command List'", 'type=result', el_str(err), stanza):
        rep.should('the items result mirrors the node', res['disco_items']['node'] == NS_COMMANDS,
                   'XEP-0030 §4.2 (the response SHOULD mirror the node)', NS_COMMANDS, res['disco_items']['node'],
                   stanza)
        rep.data['command_items'] = items_of(res)

    bogus = 'urn:example:no-such-node:' + n
    stanza = "<iq type='get' to='%s'><query xmlns='%s' node='%s'/></iq>" % (dom, NS_INFO, bogus)
    res, err = await call('disco#info of an unknown node', d.get_info(jid=dom, node=bogus, timeout=t), t)
    rep.must('an unknown node is item-not-found', res is None and error_condition(err) == 'item-not-found',
             'XEP-0030 §7 (item-not-found for a nonexistent node)', 'error item-not-found',
             el_str(err) if err is not None else el_str(res), stanza)

    # -- alice's own account
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from alice" % (alice.bare, NS_INFO)
    res, err = await call("disco#info to alice's bare JID", d.get_info(jid=alice.bare, timeout=t), t)
    acct = None
    if rep.must("the server answers disco#info to alice's own bare JID", res is not None,
                'XEP-0030 §3.1, RFC 6120 10.5.4 (the server answers for the account)',
                'type=result', el_str(err), stanza):
        acct = info_of(res)
        rep.data['account_info'] = acct
        rep.must('the account identity is account/registered', 'account/registered' in acct['identities'],
                 'XEP-0030 §3.1, Registrar category "account"', 'account/registered', acct['identities'], stanza)
        for f in exp.get('account_features', []):
            rep.must('the account advertises %s' % f, f in acct['features'], 'XEP-0030 §3.1 (features on the account)',
                     f, acct['features'], stanza)
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from alice" % (alice.bare, NS_ITEMS)
    res, err = await call("disco#items to alice's bare JID", d.get_items(jid=alice.bare, timeout=t), t)
    rep.must("the server answers disco#items to alice's own bare JID", res is not None, 'XEP-0030 §4.1',
             'type=result', el_str(err), stanza)

    union = set(info['features']) | set(acct['features'] if acct else [])
    for f in exp.get('any_features', []):
        rep.must('%s is advertised by the server or the account' % f, f in union,
                 'XEP-0030 §3.1 (docs/XEPS.md lists it)', f, sorted(union))

    # -- another account's bare JID: a subscriber may ask, others not
    await bob.subscribe_to(alice)
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from bob (subscribed to alice)" % (alice.bare, NS_INFO)
    res, err = await call("bob's disco#info to alice", bob.x['xep_0030'].get_info(jid=alice.bare, timeout=t), t)
    if rep.must("a subscriber gets disco#info of the contact's bare JID", res is not None,
                'XEP-0030 §3.1, RFC 6120 10.5.4', 'type=result', el_str(err), stanza):
        rep.must("it shows the account identity", 'account/registered' in info_of(res)['identities'],
                 'XEP-0030 §3.1', 'account/registered', info_of(res)['identities'], stanza)
    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq> from carol (no subscription)" % (alice.bare, NS_INFO)
    res, err = await call("carol's disco#info to alice", carol.x['xep_0030'].get_info(jid=alice.bare, timeout=t), t)
    rep.data['non_subscriber_answer'] = el_str(err) if err is not None else el_str(res)
    rep.must("a non-subscriber gets service-unavailable (the account's presence is not revealed)",
             res is None and error_condition(err) == 'service-unavailable',
             'XEP-0030 §8 (not authorized to receive presence: MUST return service-unavailable)',
             'error service-unavailable', rep.data['non_subscriber_answer'], stanza)


if __name__ == '__main__':
    main('xep0030_disco', body, description=__doc__.splitlines()[0])
