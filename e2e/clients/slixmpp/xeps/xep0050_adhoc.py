#!/usr/bin/python3
"""XEP-0050 Ad-Hoc Commands with slixmpp's xep_0050 plugin.

alice lists the server's commands with get_commands() (disco#items of the
commands node) and asks disco#info about the command node (identity
automation/command-node, features commands and jabber:x:data).
bob subscribes to alice's presence and she approves; then alice runs the
command (expect "node", default imppd's watcher information command
'urn:imppd:watcher-info') through the plugin's session workflow
(start_command with 'next' and 'error' handlers): the server answers
with status completed and a result form (XEP-0004) whose reported fields
are watcher, kind, count, first, last, with an item for bob as a
subscriber (expect "fields", "watcher_kind"). Executing an unknown node is
item-not-found; going on with a completed command's sessionid is
bad-request ('Possible Errors').
"""

import asyncio

from common import Client, Failed, NS_DATA, call, el_str, error_condition, main, nonce

NS = 'http://jabber.org/protocol/commands'


def form_of(iq):
    cmd = iq.xml.find('{%s}command' % NS)
    return None if cmd is None else cmd.find('{%s}x' % NS_DATA)


def form_items(x):
    out = []
    for it in x.findall('{%s}item' % NS_DATA):
        d = {}
        for f in it.findall('{%s}field' % NS_DATA):
            d[f.get('var')] = f.findtext('{%s}value' % NS_DATA)
        out.append(d)
    return out


async def run_command(client, jid, node, timeout):
    """Run a command through the plugin's workflow: start_command with
    'next' / 'error' handlers. Returns the list of responses (the last one
    completed, or an error)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    responses = []

    def on_next(iq, session):
        responses.append(iq)
        if iq['command']['status'] != 'executing' and not done.done():
            done.set_result(responses)
        elif not done.done():
            # A multi-stage command: this scenario submits nothing more.
            client.x['xep_0050'].cancel_command(session)

    def on_error(iq, session):
        responses.append(iq)
        if not done.done():
            done.set_result(responses)

    client.x['xep_0050'].start_command(jid, node, {'next': on_next, 'error': on_error})
    try:
        return await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        raise Failed('no answer to command %s within %.0fs' % (node, timeout))


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    node = cfg.expect.get('node', 'urn:imppd:watcher-info')
    fields = cfg.expect.get('fields', ['watcher', 'kind', 'count', 'first', 'last'])
    kind = cfg.expect.get('watcher_kind', 'subscriber')
    alice = await Client(cfg, cfg.user('alice'), 'adhoc-' + n, plugins=('xep_0050',)).connect(
        roster=True, presence={})
    bob = await Client(cfg, cfg.user('bob'), 'adhoc-' + n).connect(roster=True, presence={})
    ad = alice.x['xep_0050']

    stanza = "<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>" % (
        dom, NS)
    res, err = await call('get_commands', ad.get_commands(dom, timeout=t), t)
    if not rep.must('the server lists its commands', res is not None, "XEP-0050 'Retrieving the Command List'",
                    'type=result', el_str(err), stanza):
        raise Failed('no command list')
    cmds = [{'jid': str(i[0]), 'node': i[1], 'name': i[2]} for i in res['disco_items']['items']]
    rep.data['commands'] = cmds
    mine = [c for c in cmds if c['node'] == node]
    rep.must('the list has %s' % node, mine, "XEP-0050 'Retrieving the Command List'", node, cmds, stanza)
    if mine:
        rep.must('the item names the server and has a name', mine[0]['jid'] == dom and mine[0]['name'],
                 "XEP-0050 'Retrieving the Command List' (item jid, node = command, name = label)",
                 {'jid': dom, 'node': node, 'name': '...'}, mine[0], stanza)
    rep.must('no admin command is listed for a user who is not an admin',
             not [c for c in cmds if 'protocol/admin#' in (c['node'] or '')],
             "XEP-0133 'Security Considerations' (admin commands for admins only)", [],
             [c['node'] for c in cmds if 'protocol/admin#' in (c['node'] or '')], stanza)

    stanza = "<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='%s'/></iq>" % (
        dom, node)
    res, err = await call('disco#info of the command', alice.x['xep_0030'].get_info(jid=dom, node=node, timeout=t), t)
    if rep.must('disco#info of the command node is answered', res is not None,
                "XEP-0050 'Retrieving the Command List'", 'type=result', el_str(err), stanza):
        ids = ['%s/%s' % (i[0], i[1]) for i in res['disco_info']['identities']]
        feats = list(res['disco_info']['features'])
        rep.must('the node is an automation/command-node', 'automation/command-node' in ids,
                 "XEP-0050 'Retrieving the Command List' (MUST automation/command-node)",
                 'automation/command-node', ids, stanza)
        rep.must('the node has the commands feature', NS in feats,
                 "XEP-0050 'Retrieving the Command List' (MUST the commands feature)", NS, feats, stanza)
        rep.should('the node has the jabber:x:data feature', NS_DATA in feats,
                   "XEP-0050 'Retrieving the Command List' (SHOULD jabber:x:data)", NS_DATA, feats, stanza)

    await bob.subscribe_to(alice)

    stanza = "<iq type='set' to='%s'><command xmlns='%s' node='%s' action='execute'/></iq>" % (dom, NS, node)
    responses = await run_command(alice, dom, node, t)
    last = responses[-1]
    rep.data['responses'] = [el_str(r) for r in responses]
    if not rep.must('the command completes', last['type'] == 'result' and last['command']['status'] == 'completed',
                    "XEP-0050 'Simple Execution' (status completed)", "status='completed'", el_str(last), stanza):
        raise Failed('the command did not complete')
    rep.should('the response has a sessionid', bool(last['command']['sessionid']),
               "XEP-0050 '<command/> Element' (the responder SHOULD initialize sessionid)", 'a sessionid',
               el_str(last), stanza)
    rep.must('the response names the node', last['command']['node'] == node,
             "XEP-0050 '<command/> Element' (node MUST be present)", node, last['command']['node'], stanza)
    x = form_of(last)
    if not rep.must('the response carries a data form', x is not None, "XEP-0050 'Simple Execution', XEP-0004",
                    'jabber:x:data form', el_str(last), stanza):
        return
    rep.must('the form is of type result', x.get('type') == 'result', 'XEP-0004 §3.1', 'result', x.get('type'), stanza)
    reported = [f.get('var') for f in x.findall('{%s}reported/{%s}field' % (NS_DATA, NS_DATA))]
    rep.must('the reported fields are %s' % fields, reported == fields, 'XEP-0004 §3.4 (reported)', fields, reported,
             stanza)
    its = form_items(x)
    rep.data['items'] = its
    bobs = [i for i in its if (i.get('watcher') or '').lower() == bob.bare]
    rep.must('bob is listed as a %s' % kind, any(i.get('kind') == kind for i in bobs),
             'imppd watcher information (RFC 2778 §3)', {'watcher': bob.bare, 'kind': kind}, its, stanza)
    rep.must('every item has every reported field', all(set(i) == set(reported) for i in its), 'XEP-0004 §3.4',
             reported, its, stanza)

    # Errors
    bogus = 'urn:example:no-such-command:' + n
    stanza = "<iq type='set' to='%s'><command xmlns='%s' node='%s' action='execute'/></iq>" % (dom, NS, bogus)
    res, err = await call('unknown command', ad.send_command(dom, bogus, timeout=t), t)
    rep.must('an unknown command is item-not-found', res is None and error_condition(err) == 'item-not-found',
             "XEP-0050 'Possible Errors' (item-not-found: the node does not exist)", 'item-not-found',
             el_str(err) if err is not None else el_str(res), stanza)
    sid = last['command']['sessionid']
    stanza = "<iq type='set' to='%s'><command xmlns='%s' node='%s' sessionid='%s' action='execute'/></iq>" % (
        dom, NS, node, sid)
    res, err = await call('completed session', ad.send_command(dom, node, sessionid=sid, timeout=t), t)
    rep.must('a completed session cannot go on (bad-request)', res is None and error_condition(err) == 'bad-request',
             "XEP-0050 'Session Lifetime' (a completed session has ended), 'Possible Errors' (bad-request)",
             'bad-request', el_str(err) if err is not None else el_str(res), stanza)
    if err is not None:
        rep.should('the error carries <bad-sessionid/>',
                   err.xml.find('{jabber:client}error/{%s}bad-sessionid' % NS) is not None,
                   "XEP-0050 'Possible Errors' (specific condition <bad-sessionid/>)",
                   "<bad-sessionid xmlns='%s'/>" % NS, el_str(err), stanza)


if __name__ == '__main__':
    main('xep0050_adhoc', body, description=__doc__.splitlines()[0])
