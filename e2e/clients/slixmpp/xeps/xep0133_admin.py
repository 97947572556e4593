#!/usr/bin/python3
"""XEP-0133 Service Administration with slixmpp's xep_0133 plugin.

"admin" (an administrator of the server) lists the commands with the
plugin's get_commands() and finds add-user; runs add_user() through the
XEP-0050 session workflow: the first stage is a form (status executing)
with the fields accountjid, password and password-verify ('Add User'); the
scenario fills it in and completes it (complete_command), and the server
answers completed. The new account ("new" in the configuration, which must
not exist yet) then logs in with its password. "user" (not an
administrator) sees no admin commands and is refused add-user with
forbidden ('Error Handling').
"""

import asyncio

from common import Client, Failed, NS_DATA, call, el_str, error_condition, main, nonce

NS_CMD = 'http://jabber.org/protocol/commands'
ADD_USER = 'http://jabber.org/protocol/admin#add-user'


def fields_of(iq):
    cmd = iq.xml.find('{%s}command' % NS_CMD)
    x = None if cmd is None else cmd.find('{%s}x' % NS_DATA)
    if x is None:
        return None, None
    return x.get('type'), [f.get('var') for f in x.findall('{%s}field' % NS_DATA)]


async def add_user(client, jid, password, timeout):
    """xep_0133.add_user() with handlers that fill in the form and
    complete it. Returns the list of responses."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    responses = []
    adhoc = client.x['xep_0050']

    def on_next(iq, session):
        responses.append(iq)
        if iq['type'] == 'result' and iq['command']['status'] == 'executing':
            form = iq['command']['form']
            answer = client.x['xep_0004'].make_form(ftype='submit')
            for var in form.get_fields():
                if var == 'FORM_TYPE':
                    answer.add_field(var='FORM_TYPE', ftype='hidden', value=form.get_fields()[var]['value'])
                elif var == 'accountjid':
                    answer.add_field(var=var, value=jid)
                elif var in ('password', 'password-verify'):
                    answer.add_field(var=var, value=password)
            session['payload'] = answer
            session['next'] = on_next
            adhoc.complete_command(session)
        elif not done.done():
            done.set_result(responses)

    def on_error(iq, session):
        responses.append(iq)
        if not done.done():
            done.set_result(responses)

    client.x['xep_0133'].add_user(session={'next': on_next, 'error': on_error})
    try:
        return await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        raise Failed('add-user: no final answer within %.0fs (responses: %s)' % (
            timeout, [el_str(r) for r in responses]))


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    dom = cfg.domain
    new = cfg.user('new')
    plugins = ('xep_0133',)
    admin = await Client(cfg, cfg.user('admin'), 'admin-' + n, plugins=plugins).connect(presence={})
    user = await Client(cfg, cfg.user('user'), 'admin-' + n, plugins=plugins).connect(presence={})

    stanza = "<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>" % (
        dom, NS_CMD)
    res, err = await call('admin get_commands', admin.x['xep_0133'].get_commands(timeout=t), t)
    if not rep.must("the server lists commands to the admin", res is not None, "XEP-0050 'Retrieving the Command List'",
                    'type=result', el_str(err), stanza + ' from the admin'):
        raise Failed('no command list')
    nodes = [i[1] for i in res['disco_items']['items']]
    rep.data['admin_commands'] = nodes
    rep.must('add-user is listed for the admin', ADD_USER in nodes, "XEP-0133 'Add User'", ADD_USER, nodes,
             stanza + ' from the admin')
    res, err = await call('user get_commands', user.x['xep_0133'].get_commands(timeout=t), t)
    unodes = [] if res is None else [i[1] for i in res['disco_items']['items']]
    rep.must('no admin command is listed for a user who is not an admin',
             not [x for x in unodes if '/admin#' in (x or '')], "XEP-0133 'Security Considerations'", [],
             unodes, stanza + ' from a user who is not an admin')

    # -- a user who is not an admin
    stanza = "<iq type='set' to='%s'><command xmlns='%s' node='%s' action='execute'/></iq> from a non-admin" % (
        dom, NS_CMD, ADD_USER)
    res, err = await call('add-user by a non-admin', user.x['xep_0050'].send_command(dom, ADD_USER, timeout=t), t)
    rep.must('add-user by a user who is not an admin is forbidden', res is None and error_condition(err) == 'forbidden',
             "XEP-0133 'Error Handling' (forbidden: insufficient privileges)", 'forbidden',
             el_str(err) if err is not None else el_str(res), stanza)

    # -- the admin adds an account
    responses = await add_user(admin, new['jid'], new['password'], t)
    rep.data['responses'] = [el_str(r) for r in responses]
    first = responses[0]
    ftype, fields = fields_of(first)
    stanza = "<iq type='set' to='%s'><command xmlns='%s' node='%s' action='execute'/></iq>" % (dom, NS_CMD, ADD_USER)
    rep.must('add-user first returns a form to fill in', first['type'] == 'result'
             and first['command']['status'] == 'executing' and ftype == 'form',
             "XEP-0133 'Add User' (the service SHOULD return the form)",
             "status='executing' with <x type='form'/>", el_str(first), stanza)
    rep.must('the form asks for accountjid, password, password-verify',
             fields is not None and {'accountjid', 'password', 'password-verify'} <= set(fields),
             "XEP-0133 'Add User'", ['FORM_TYPE', 'accountjid', 'password', 'password-verify'], fields, stanza)
    last = responses[-1]
    stanza = ("<iq type='set' to='%s'><command xmlns='%s' node='%s' sessionid='...' action='complete'>"
              "<x xmlns='jabber:x:data' type='submit'>FORM_TYPE, accountjid=%s, password, password-verify</x>"
              "</command></iq>" % (dom, NS_CMD, ADD_USER, new['jid']))
    notes = [(nt.get('type'), nt.text) for nt in last.xml.findall('{%s}command/{%s}note' % (NS_CMD, NS_CMD))]
    if not rep.must('submitting the form completes the command', len(responses) >= 2 and last['type'] == 'result'
                    and last['command']['status'] == 'completed' and not [x for x in notes if x[0] == 'error'],
                    "XEP-0133 'Add User', XEP-0050 'Commands Successful/Failed'",
                    "status='completed' without an error note",
                    el_str(last), stanza):
        raise Failed('add-user failed')

    # -- the new account logs in
    newbie = Client(cfg, new, 'new-' + n)
    try:
        await newbie.connect(presence={})
        ok, why = True, str(newbie.x.boundjid)
    except Failed as e:
        ok, why = False, str(e)
    rep.must('the new account logs in with its password', ok, "XEP-0133 'Add User' (the account exists)",
             'a session as %s' % new['jid'], why)
    if ok:
        await newbie.barrier()


if __name__ == '__main__':
    main('xep0133_admin', body, description=__doc__.splitlines()[0])
