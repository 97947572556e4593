#!/usr/bin/python3
"""XEP-0313 Message Archive Management with slixmpp's xep_0313 plugin.

alice and bob exchange seven chat messages, each waited for on the other
side so their order is known, and alice sends one to carol in the middle.
alice then queries her archive with the plugin's retrieve():

- with=bob's bare JID, one page of 50: the seven messages in the order
  alice sent and received them ('Order of messages', 'Query results'),
  bodies and senders intact, each result's id the XEP-0359 stanza-id
  alice's copy carried ('Communicating the archive ID'), a delay stamp,
  the <fin/> complete and its RSM first/last the ids of the first and last
  results ('Querying an archive', 'Requesting pages');
- the same in pages of three with retrieve(iterator=True): 3, 3, 1 (then
  slixmpp's empty closing page), no message twice, the same order, only
  the last page complete;
- backwards in pages of three (reverse=True: RSM <before/>, 'Requesting
  the last page'): the last three first, each page in chronological order,
  only the page with the first message complete;
- without a filter: the message to carol is there too;
- a query with a form field the server does not know is refused with
  feature-not-implemented ('Retrieving form fields').

Only messages whose body carries this run's nonce are considered, so the
scenario can run against an account with history.
"""

from common import Client, Failed, NS_SID, call, el_str, error_condition, main, nonce

NS = 'urn:xmpp:mam:2'
NS_RSM = 'http://jabber.org/protocol/rsm'


def result_of(msg):
    r = msg['mam_result']
    f = r['forwarded']
    inner = f['stanza']
    return {'id': r['id'], 'queryid': r['queryid'], 'body': inner['body'], 'from': str(inner['from']),
            'to': str(inner['to']), 'stamp': str(f['delay']['stamp']) if f.xml.find('{urn:xmpp:delay}delay')
            is not None else None}


def fin_of(iq):
    fin = iq.xml.find('{%s}fin' % NS)
    if fin is None:
        return None
    s = fin.find('{%s}set' % NS_RSM)
    return {
        'complete': fin.get('complete'),
        'first': s.findtext('{%s}first' % NS_RSM) if s is not None else None,
        'last': s.findtext('{%s}last' % NS_RSM) if s is not None else None,
        'count': s.findtext('{%s}count' % NS_RSM) if s is not None else None,
    }


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    plugins = ('xep_0313',)
    alice = await Client(cfg, cfg.user('alice'), 'mam-' + n, plugins=plugins).connect(presence={})
    bob = await Client(cfg, cfg.user('bob'), 'mam-' + n).connect(presence={})
    carol = await Client(cfg, cfg.user('carol'), 'mam-' + n).connect(presence={})
    mam = alice.x['xep_0313']

    # -- the conversation: a, b, a, [alice -> carol], b, a, b, a
    sent = []  # (body, sender full JID) in order
    sids = {}  # body -> stanza-id alice's copy carried (messages alice received)
    plan = ['alice', 'bob', 'alice', 'carol', 'bob', 'alice', 'bob', 'alice']
    for i, who in enumerate(plan):
        text = 'mam %s #%d %s' % (n, i, who)
        if who == 'bob':
            src, dst, to = bob, alice, alice.bare
        elif who == 'alice':
            src, dst, to = alice, bob, bob.bare
        else:
            src, dst, to = alice, carol, carol.bare
        m = dst.mark()
        src.send_message(to, text)
        got = await dst.try_wait_for(lambda el: el.findtext('{jabber:client}body') == text, 'message %d' % i, m)
        if got is None:
            raise Failed('%s did not get message %d' % (dst.label, i))
        if dst is alice:
            sid = [e.get('id') for e in got.findall('{%s}stanza-id' % NS_SID) if e.get('by') == alice.bare]
            sids[text] = sid[0] if sid else None
        if who != 'carol':
            sent.append((text, src.full))
    want = [b for b, _ in sent]
    await alice.barrier()

    def ours(results):
        return [r for r in results if r['body'] and n in r['body']]

    # -- one page with with=bob
    stanza = ("<iq type='set'><query xmlns='%s' queryid=...><x xmlns='jabber:x:data' type='submit'>"
              "<field var='FORM_TYPE'><value>%s</value></field><field var='with'><value>%s</value></field></x>"
              "<set xmlns='%s'><max>50</max></set></query></iq>" % (NS, NS, bob.bare, NS_RSM))
    mark = alice.mark()
    res, err = await call('MAM query', mam.retrieve(with_jid=bob.bare, rsm={'max': 50}, timeout=t), t)
    if not rep.must('the archive query succeeds', res is not None, "XEP-0313 'Querying an archive'", 'type=result',
                    el_str(err), stanza):
        raise Failed('MAM query failed: %s' % el_str(err))
    results = [result_of(m) for m in res['mam']['results']]
    raw = [el_str(e) for e in alice.stanzas[mark:] if e.find('{%s}result' % NS) is not None]
    rep.must("slixmpp's collector took every result message (they carry the query's queryid)",
             len(raw) == len(results), "XEP-0313 'Query results' (the queryid MUST be on each result)", raw,
             len(results), stanza)
    got = ours(results)
    rep.data['results'] = got
    rep.must('the results are the seven messages with bob, in chronological order', [r['body'] for r in got] == want,
             "XEP-0313 'Order of messages' (the order alice received or sent them), 'Filtering by JID'",
             want, [r['body'] for r in got], stanza)
    rep.must('only messages with bob are returned', len(got) == len(results),
             "XEP-0313 'Filtering by JID'", len(got), [r['body'] for r in results], stanza)
    rep.must('every result carries the original sender', [r['from'] for r in got] == [f for _, f in sent],
             "XEP-0313 'Query results' (the original message, forwarded)", [f for _, f in sent],
             [r['from'] for r in got], stanza)
    rep.must('every result has a delay stamp', all(r['stamp'] for r in got),
             "XEP-0313 'Query results' (XEP-0203 delay in <forwarded/>)",
             'a stamp on each', [r['stamp'] for r in got], stanza)
    recv = [(r['body'], r['id'], sids.get(r['body'])) for r in got if r['body'] in sids]
    rep.must("each result's id is the stanza-id alice's copy carried", recv and all(a == b for _, a, b in recv),
             "XEP-0313 'Communicating the archive ID'", [b for _, _, b in recv],
             [a for _, a, _ in recv], stanza)
    fin = fin_of(res)
    rep.data['fin'] = fin
    rep.must('the <fin/> says complete', fin and fin['complete'] in ('true', '1'),
             "XEP-0313 'Requesting pages' (complete='true' when not limited)", "complete='true'", fin, stanza)
    if got and fin:
        rep.must('RSM first and last name the first and last results', (fin['first'], fin['last']) == (
            results[0]['id'], results[-1]['id']),
            "XEP-0313 'Querying an archive' (<fin/> names the first and last UID)",
            [results[0]['id'], results[-1]['id']], [fin['first'], fin['last']], stanza)

    # -- pages of three, forwards
    pages = []
    it = mam.retrieve(with_jid=bob.bare, rsm={'max': 3}, iterator=True)
    async for page in it:
        pr = [result_of(m) for m in page['mam']['results']]
        pages.append({'bodies': [r['body'] for r in pr], 'ids': [r['id'] for r in pr], 'fin': fin_of(page)})
        if len(pages) > 10:
            break
    rep.data['pages'] = pages
    flat = [b for p in pages for b in p['bodies']]
    sizes = [len(p['bodies']) for p in pages]
    stanza3 = stanza.replace('<max>50</max>', '<max>3</max>') + ', then <after>last id</after>'
    rep.must('paging by three gives pages of 3, 3, 1', sizes[:3] == [3, 3, 1] and not any(sizes[3:]),
             "XEP-0313 'Requesting pages'", [3, 3, 1], sizes, stanza3)
    rep.must('the pages together are the messages in order, none twice', flat == want,
             "XEP-0313 'Query results' (chronological within and across RSM pages)",
             want, flat, stanza3)
    completes = [p['fin']['complete'] if p['fin'] else None for p in pages if p['bodies']]
    rep.must('only the last page is complete', completes and all(c not in ('true', '1') for c in completes[:-1])
             and completes[-1] in ('true', '1'), "XEP-0313 'Requesting pages'", [None, None, 'true'], completes,
             stanza3)
    rep.must("each page's RSM first/last name its first and last result",
             all(p['fin'] and p['fin']['first'] == p['ids'][0] and p['fin']['last'] == p['ids'][-1]
                 for p in pages if p['ids']), "XEP-0313 'Requesting pages'", 'first/last = ids of the page',
             [(p['fin'], p['ids']) for p in pages], stanza3)

    # -- backwards from the end (RSM <before/>), as slixmpp's
    # iterator does with reverse=True: pages of 3, 3, 1 from the end
    pages = []
    it = mam.retrieve(with_jid=bob.bare, rsm={'max': 3}, iterator=True, reverse=True)
    async for page in it:
        pr = [result_of(m) for m in page['mam']['results']]
        pages.append({'bodies': [r['body'] for r in pr], 'fin': fin_of(page)})
        if len(pages) > 10:
            break
    rep.data['pages_backwards'] = pages
    stanza = stanza.replace('<max>50</max>', '<max>3</max><before/>') + ', then <before>first id</before>'
    got = [p['bodies'] for p in pages if p['bodies']]
    wantb = [want[-3:], want[-6:-3], want[:-6]]
    rep.must('paging backwards gives the last three first, each page in chronological order', got == wantb,
             "XEP-0313 'Requesting the last page' (a page is in chronological order)", wantb, got, stanza)
    completes = [p['fin']['complete'] if p['fin'] else None for p in pages if p['bodies']]
    rep.must('only the page holding the first message is complete', completes
             and all(c not in ('true', '1') for c in completes[:-1]) and completes[-1] in ('true', '1'),
             "XEP-0313 'Requesting pages' (complete='true' when not limited)",
             [None, None, 'true'], completes, stanza)

    # -- no filter: carol's message is there too
    res, err = await call('MAM unfiltered', mam.retrieve(rsm={'max': 50}, timeout=t), t)
    if rep.must('an unfiltered query succeeds', res is not None, "XEP-0313 'Querying an archive'", 'type=result',
                el_str(err)):
        allb = [r['body'] for r in ours([result_of(m) for m in res['mam']['results']])]
        want_all = ['mam %s #%d %s' % (n, i, w) for i, w in enumerate(plan)]
        rep.must('without a filter every message of the run is returned, in order', allb == want_all,
                 "XEP-0313 'Order of messages'", want_all, allb)

    # -- a form field the server does not know
    iq = alice.x.make_iq_set()
    iq['mam']['queryid'] = iq['id']
    iq['mam'].set_custom_field('urn:example:no-such-field', 'x')
    stanza = ("<iq type='set'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='FORM_TYPE'><value>%s</value></field>"
              "<field var='urn:example:no-such-field'><value>x</value></field></x></query></iq>" % (NS, NS))
    res, err = await call('MAM query with an unknown field', iq.send(timeout=t), t)
    rep.must('a query with an unknown form field is refused with feature-not-implemented',
             res is None and error_condition(err) == 'feature-not-implemented',
             "XEP-0313 'Retrieving form fields' (a field the server does not recognise: MUST feature-not-implemented)",
             'error feature-not-implemented', el_str(err) if err is not None else el_str(res), stanza)


if __name__ == '__main__':
    main('xep0313_mam', body, description=__doc__.splitlines()[0])
