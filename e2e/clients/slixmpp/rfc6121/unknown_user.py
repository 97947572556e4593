#!/usr/bin/python3
"""Scenario 9: stanzas to a local account that does not exist.

alice sends messages (chat and normal, to the bare JID and to a full JID)
to nobody-<random>@domain. RFC 6121 8.5.1 lets the server either ignore a
message or answer service-unavailable; issue #4 asks for the bounce, so
that is asserted: a <message type='error'/> with the original id, from the
address alice wrote to, with <service-unavailable/> of type cancel. An IQ
to that address MUST be answered with service-unavailable (8.5.1), and a
subscription request SHOULD be answered with 'unsubscribed' (3.1.3).
"""

from slixmpp.exceptions import IqError

from common import (Client, Failed, bare, el_str, error_condition, error_type, is_message, is_presence,
                    main, nonce)


async def body(cfg, rep, args):
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'unknown-' + n).connect(roster=True, presence={})
    nobody = cfg.raw.get('nonexistent') or 'nobody-%s@%s' % (n, cfg.domain)
    for to in (nobody, nobody + '/somewhere'):
        for mtype in ('chat', 'normal'):
            m = alice.mark()
            mid = 'nouser-%s-%s' % (mtype, nonce())
            alice.send_message(to, 'hello nobody ' + n, mtype=mtype, mid=mid)
            stanza = "<message type='%s' to='%s' id='%s'><body/></message>" % (mtype, to, mid)
            err = await alice.try_wait_for(lambda e: is_message(mtype='error')(e) and e.get('id') == mid,
                                           'an error bounce', m)
            if err is None:
                await alice.barrier()
                rep.must('%s: bounced with an error' % stanza, False,
                         'RFC 6121 8.5.1 (service-unavailable; issue #4 requires the bounce)',
                         "<message type='error' id='%s'><error type='cancel'><service-unavailable/>" % mid,
                         'nothing within %.0fs' % cfg.timeout, stanza)
                continue
            rep.must('%s: bounced with service-unavailable, type cancel' % stanza,
                     error_condition(err) == 'service-unavailable' and error_type(err) == 'cancel',
                     'RFC 6121 8.5.1, RFC 6120 8.3.3.19', 'cancel/service-unavailable',
                     '%s/%s' % (error_type(err), error_condition(err)), stanza)
            rep.must('%s: the error comes from %s' % (stanza, to), (err.get('from') or '').lower() == to.lower(),
                     'RFC 6120 8.3.1 (error from the entity addressed)', to, err.get('from'), stanza)
            rep.should('%s: the error is addressed to %s' % (stanza, alice.full),
                       err.get('to') in (None, alice.full), 'RFC 6120 8.3.1', alice.full, err.get('to'), stanza)
    # IQ
    stanza = "<iq type='get' to='%s'><query xmlns='jabber:iq:version'/></iq>" % nobody
    try:
        resp = await alice.iq('get', "<query xmlns='jabber:iq:version'/>", to=nobody)
        rep.must('%s: answered with an error' % stanza, False, 'RFC 6121 8.5.1',
                 'service-unavailable', el_str(resp), stanza)
    except IqError as e:
        rep.must('%s: answered with service-unavailable' % stanza,
                 error_condition(e.iq.xml) == 'service-unavailable', 'RFC 6121 8.5.1',
                 'service-unavailable', error_condition(e.iq.xml), stanza)
    except Failed as e:
        rep.must('%s: answered' % stanza, False, 'RFC 6121 8.5.1', 'service-unavailable', str(e), stanza)
    # subscription request
    m = alice.mark()
    alice.send_presence(to=nobody, type='subscribe')
    stanza = "<presence type='subscribe' to='%s'/>" % nobody
    got = await alice.try_wait_for(is_presence('unsubscribed', frm=nobody), "'unsubscribed'", m)
    rep.should("%s: answered with <presence type='unsubscribed'/>" % stanza, got is not None,
               'RFC 6121 3.1.3 (the contact does not exist)', 'unsubscribed', None if got is None else el_str(got),
               stanza)
    ra = await alice.roster_get()
    rep.info('%s: alice\'s roster item afterwards' % stanza, ra.get(bare(nobody)))
    await alice.close()


if __name__ == '__main__':
    main('unknown-user', body)
