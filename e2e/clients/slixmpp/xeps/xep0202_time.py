#!/usr/bin/python3
"""XEP-0202 Entity Time with slixmpp's xep_0202 plugin.

alice asks the server for its time with get_entity_time (§2: <tzo/> and
<utc/>, XEP-0082 formats); the UTC time must be within a few seconds of the
local clock (the server runs on the same machine in the tests: "max_skew"
in expect, default 30 s) and <utc/> must be in UTC (end in Z).
"""

import datetime
import re

from common import Client, call, el_str, main, nonce

NS = 'urn:xmpp:time'
TZO = re.compile(r'^(Z|[+-]\d{2}:\d{2})$')
UTC = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$')


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    alice = await Client(cfg, cfg.user('alice'), 'time-' + n, plugins=('xep_0202',)).connect(presence={})
    stanza = "<iq type='get' to='%s'><time xmlns='%s'/></iq>" % (dom, NS)
    before = datetime.datetime.now(datetime.timezone.utc)
    res, err = await call('time of the server', alice.x['xep_0202'].get_entity_time(dom, timeout=t), t)
    after = datetime.datetime.now(datetime.timezone.utc)
    if not rep.must('the server answers urn:xmpp:time with a result', res is not None, 'XEP-0202 §2',
                    'type=result', el_str(err), stanza):
        return
    el = res.xml.find('{%s}time' % NS)
    tzo = el.findtext('{%s}tzo' % NS) if el is not None else None
    utc = el.findtext('{%s}utc' % NS) if el is not None else None
    rep.data['tzo'], rep.data['utc'] = tzo, utc
    rep.must('<tzo/> is a XEP-0082 offset', tzo is not None and TZO.match(tzo), 'XEP-0202 §2, XEP-0082 (TZD)',
             '+hh:mm, -hh:mm or Z', tzo, stanza)
    rep.must('<utc/> is a XEP-0082 DateTime in UTC', utc is not None and UTC.match(utc),
             'XEP-0202 §2 (MUST be expressed in UTC), XEP-0082 (DateTime profile)',
             'CCYY-MM-DDThh:mm:ss[.sss]Z', utc, stanza)
    # slixmpp 1.8.3's Time.get_utc appends 'Z' to the text before parsing,
    # so it cannot parse a conformant <utc/> (which ends in Z); parse the
    # text here and record what slixmpp made of it.
    try:
        rep.data['slixmpp_time'] = res['entity_time']['time'].isoformat()
    except Exception as e:  # noqa: BLE001
        rep.info("slixmpp 1.8.3 cannot parse the <utc/> (its get_utc appends a second 'Z')", repr(e))
    got = None
    if utc is not None and UTC.match(utc):
        got = datetime.datetime.fromisoformat(utc.replace('Z', '+00:00'))
    skew = cfg.expect.get('max_skew', 30)
    if got is not None:
        lo = before - datetime.timedelta(seconds=skew)
        hi = after + datetime.timedelta(seconds=skew)
        rep.data['skew_seconds'] = round((got - before).total_seconds(), 3)
        rep.must("the server's UTC time is within %ss of the local clock" % skew, lo <= got <= hi,
                 "XEP-0202 §2 (the UTC time according to the server)", '%s .. %s' % (lo.isoformat(), hi.isoformat()),
                 got.isoformat(), stanza)


if __name__ == '__main__':
    main('xep0202_time', body, description=__doc__.splitlines()[0])
