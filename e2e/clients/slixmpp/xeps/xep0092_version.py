#!/usr/bin/python3
"""XEP-0092 Software Version with slixmpp's xep_0092 plugin.

alice asks the server for its version with get_version (§2: a result with
<name/> and <version/>, <os/> optional), and bob's slixmpp through the
server (the plugin answers by itself).

expect (optional): "name": the server's software name.
"""

from common import Client, call, el_str, main, nonce

NS = 'jabber:iq:version'


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    alice = await Client(cfg, cfg.user('alice'), 'version-' + n, plugins=('xep_0092',)).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'version-' + n, plugins=('xep_0092',)).connect(presence={})
    v = alice.x['xep_0092']

    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (dom, NS)
    res, err = await call('version of the server', v.get_version(dom, timeout=t), t)
    if rep.must('the server answers jabber:iq:version with a result', res is not None, 'XEP-0092 §2',
                'type=result', el_str(err), stanza):
        sv = res['software_version']
        got = {'name': sv['name'], 'version': sv['version'], 'os': sv['os']}
        rep.data['server'] = got
        rep.must('the result has a name', bool(got['name']), 'XEP-0092 §2 (<name/> REQUIRED)', 'a name',
                 el_str(res), stanza)
        rep.must('the result has a version', bool(got['version']), 'XEP-0092 §2 (<version/> REQUIRED)',
                 'a version', el_str(res), stanza)
        if cfg.expect.get('name'):
            rep.must('the name is %s' % cfg.expect['name'], got['name'] == cfg.expect['name'], 'XEP-0092 §2',
                     cfg.expect['name'], got['name'], stanza)

    stanza = "<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (bob.full, NS)
    res, err = await call("version of bob's client", v.get_version(bob.full, timeout=t), t)
    if rep.must("bob's client answers through the server", res is not None and str(res['from']) == bob.full,
                'XEP-0092 §2, RFC 6120 10.5.4 (IQ to a full JID is routed)', 'result from ' + bob.full,
                el_str(err) if err is not None else el_str(res), stanza):
        rep.data['client'] = {'name': res['software_version']['name'], 'version': res['software_version']['version']}


if __name__ == '__main__':
    main('xep0092_version', body, description=__doc__.splitlines()[0])
