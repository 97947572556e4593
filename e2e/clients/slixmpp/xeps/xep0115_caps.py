#!/usr/bin/python3
"""XEP-0115 Entity Capabilities of the server, with slixmpp's xep_0115 plugin.

alice logs in with xep_0115 loaded. The server's stream features after
authentication carry <c xmlns='http://jabber.org/protocol/caps' hash node
ver/> (XEP-0115 §6.3); slixmpp's plugin takes it as the server's caps,
asks disco#info at node#ver and, if the verification string it computes
(§5.1) matches, assigns it to the domain: the scenario waits for that
assignment. It also checks by hand: the disco#info at node#ver, hashed
with the plugin's own generate_verstring, gives ver; the answer mirrors the
node; and it equals the plain disco#info of the server.
"""

import asyncio

from common import Client, Failed, call, el_str, main, nonce, q

NS_CAPS = 'http://jabber.org/protocol/caps'
NS_STREAM = 'http://etherx.jabber.org/streams'


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    alice = Client(cfg, cfg.user('alice'), 'caps-' + n, plugins=('xep_0115',))
    caps = alice.x['xep_0115']

    # Every <stream:features/> seen, and the plugin's verdicts.
    features = []
    assigned = {}
    verified = asyncio.Event()

    def record_features(stanza):
        if stanza.xml.tag == q(NS_STREAM, 'features'):
            features.append(stanza.xml)
        return stanza
    alice.x.add_filter('in', record_features)

    orig_assign = caps.assign_verstring

    def assign_verstring(jid=None, verstring=None):
        assigned[str(jid)] = verstring
        if str(jid) == dom:
            verified.set()
        return orig_assign(jid, verstring)
    caps.assign_verstring = assign_verstring

    await alice.connect(presence={})

    cs = [f.find(q(NS_CAPS, 'c')) for f in features]
    cs = [c for c in cs if c is not None]
    last = el_str(features[-1]) if features else None
    rep.data['features'] = [el_str(f) for f in features]
    if not rep.must('the stream features after authentication carry the server\'s <c/>', cs,
                    'XEP-0115 §6.3 (stream feature)', "<c xmlns='%s' hash=... node=... ver=.../>" % NS_CAPS, last):
        raise Failed('no caps in the stream features')
    c = cs[-1]
    hash_, node, ver = c.get('hash'), c.get('node'), c.get('ver')
    rep.data['caps'] = {'hash': hash_, 'node': node, 'ver': ver}
    rep.must('<c/> has hash, node and ver', hash_ and node and ver, 'XEP-0115 §4 (all three REQUIRED)',
             'hash, node, ver', el_str(c))
    rep.must('the hash is sha-1 (the one every client supports)', hash_ == 'sha-1',
             'XEP-0115 §5.1 (sha-1: the hash every implementation supports)', 'sha-1', hash_)
    rep.must("slixmpp recorded the 'caps' stream feature", 'caps' in alice.x.features,
             'XEP-0115 §6.3', 'caps in xmpp.features', sorted(alice.x.features))

    # The plugin's own verification (disco#info at node#ver, then §5.4).
    try:
        await asyncio.wait_for(verified.wait(), t)
    except asyncio.TimeoutError:
        pass
    rep.must("slixmpp's xep_0115 verified the server's ver and assigned it to the domain",
             assigned.get(dom) == ver, 'XEP-0115 §5.4 (processing: verify, then cache)',
             {dom: ver}, assigned,
             "<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='%s#%s'/></iq>"
             % (dom, node, ver))
    cached = await caps.get_caps(jid=dom)
    rep.must("the plugin's cache holds the server's capabilities", cached is not None,
             'XEP-0115 §5.4', 'cached disco#info', str(cached))

    # The same by hand.
    d = alice.x['xep_0030']
    stanza = "<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='%s#%s'/></iq>" % (
        dom, node, ver)
    res, err = await call('disco#info at node#ver', d.get_info(jid=dom, node='%s#%s' % (node, ver), timeout=t), t)
    if not rep.must('the server answers disco#info at node#ver', res is not None, 'XEP-0115 §6.2',
                    'type=result', el_str(err), stanza):
        return
    rep.should('the answer mirrors the node', res['disco_info']['node'] == '%s#%s' % (node, ver),
               'XEP-0115 §6.2, XEP-0030 §3.2', '%s#%s' % (node, ver), res['disco_info']['node'], stanza)
    computed = caps.generate_verstring(res['disco_info'], hash_)
    rep.data['computed_ver'] = computed
    rep.must('the verification string of that disco#info is ver', computed == ver, 'XEP-0115 §5.1, §5.4',
             ver, {'computed': computed, 'info': el_str(res)}, stanza)

    plain, err = await call('disco#info of the server', d.get_info(jid=dom, timeout=t), t)
    if plain is not None:
        a = (sorted(map(tuple, res['disco_info']['identities'])), sorted(res['disco_info']['features']))
        b = (sorted(map(tuple, plain['disco_info']['identities'])), sorted(plain['disco_info']['features']))
        rep.must('node#ver describes the server as its plain disco#info does', a == b, 'XEP-0115 §6.2',
                 {'identities': b[0], 'features': b[1]}, {'identities': a[0], 'features': a[1]})
        rep.must('the plain disco#info of the server hashes to ver too',
                 caps.generate_verstring(plain['disco_info'], hash_) == ver, 'XEP-0115 §5.1',
                 ver, caps.generate_verstring(plain['disco_info'], hash_))

    # A client does not need to ask again: the <c/> of another login is the same.
    again = Client(cfg, cfg.user('alice'), 'caps2-' + n)
    feats2 = []
    again.x.add_filter('in', lambda s: (feats2.append(s.xml) if s.xml.tag == q(NS_STREAM, 'features') else None) or s)
    await again.connect()
    c2 = [f.find(q(NS_CAPS, 'c')) for f in feats2]
    c2 = [x.get('ver') for x in c2 if x is not None]
    rep.must('another session gets the same ver', c2 == [ver], 'XEP-0115 §1 (ver identifies a set of capabilities)',
             [ver], c2)


if __name__ == '__main__':
    main('xep0115_caps', body, description=__doc__.splitlines()[0])
