#!/usr/bin/python3
"""XEP-0199 XMPP Ping with slixmpp's xep_0199 plugin.

alice pings the server (§4.2: a server that supports ping answers with an
empty result) with send_ping, which raises on an error answer (ping()
would hide an error from the own server), and measures the round trip with
ping(); then pings bob's full JID through the server (§4.4, answered by
bob's slixmpp, which the plugin does by itself) and a resource of bob that
is not connected (service-unavailable from that full JID: §6, RFC 6121
8.5.3.2.2).
"""

from common import Client, call, el_str, error_condition, main, nonce

PING = "<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    alice = await Client(cfg, cfg.user('alice'), 'ping-' + n).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'ping-' + n).connect(presence={})
    p = alice.x['xep_0199']

    res, err = await call('ping to the server', p.send_ping(dom, timeout=t), t)
    rep.must('the server answers a ping with a result', res is not None and res['type'] == 'result',
             'XEP-0199 §4.2', 'type=result', el_str(err) if err is not None else el_str(res), PING % dom)
    if res is not None:
        rep.must('the result is empty', len(res.xml) == 0, 'XEP-0199 §4.2 (an IQ-result with no payload)',
                 'no child elements', el_str(res), PING % dom)
        rep.must('the result comes from the server', str(res['from']) in ('', dom), 'RFC 6120 8.1.2.1',
                 dom, str(res['from']), PING % dom)
    rtt = await p.ping(jid=dom, timeout=t)
    rep.data['rtt_ms'] = round(rtt * 1000, 1)

    res, err = await call("ping to bob's full JID", p.send_ping(bob.full, timeout=t), t)
    rep.must("bob's slixmpp answers a ping routed by the server", res is not None and str(res['from']) == bob.full,
             'XEP-0199 §4.4 (client-to-client)', 'result from ' + bob.full,
             el_str(err) if err is not None else el_str(res), PING % bob.full)

    gone = '%s/not-connected-%s' % (bob.bare, n)
    res, err = await call('ping to a resource that is not connected', p.send_ping(gone, timeout=t), t)
    rep.must('a ping to a resource that is not connected gets service-unavailable',
             res is None and error_condition(err) == 'service-unavailable',
             'XEP-0199 §6, RFC 6121 8.5.3.2.2 (IQ to a full JID with no matching resource)',
             'error service-unavailable', el_str(err) if err is not None else el_str(res), PING % gone)
    if err is not None:
        rep.must("the error comes from the full JID that was pinged", str(err['from']) == gone,
                 "XEP-0199 §6 (the IQ-error's 'from' MUST be the full JID of the request's 'to')", gone,
                 str(err['from']), PING % gone)

    # Pings from the server to a client are answered by slixmpp itself:
    # the server's own idle ping (c2s.idle_timeout) is covered by slixmpp's
    # handler, which answered bob's ping above.


if __name__ == '__main__':
    main('xep0199_ping', body, description=__doc__.splitlines()[0])
