#!/usr/bin/python3
"""XEP-0077 In-Band Registration with slixmpp's xep_0077 plugin.

Password change (§3.3): "alice" logs in and changes her password with the
plugin's change_password(); a new session logs in with the new password,
and a login with the old one fails. At the end she changes it back, so
the scenario can run again against the same server.

Account creation (§3.1, only when the server allows it: expect
"create": true): a client for "new" (an account that must not exist yet)
with the plugin and a 'register' event handler, as slixmpp's own example
does: when the server offers <register/> in the stream features after
STARTTLS the plugin fetches the registration form (which must ask for
username and password), the handler submits them, and slixmpp then
authenticates as the new account on the same stream. A second, separate
login as the new account succeeds too. (slixmpp 1.8.3 holds IQs sent
before session start, which stalls its own registration flow; the script
lets them through, see below.)
"""

from common import Client, Failed, call, el_str, main, nonce

NS = 'jabber:iq:register'
NS_FEATURE = 'http://jabber.org/features/iq-register'


async def try_login(cfg, user, resource, password=None):
    c = Client(cfg, user, resource, password=password)
    try:
        await c.connect()
        return c, None
    except Failed as e:
        return None, str(e)


async def body(cfg, rep, args):
    n = nonce()
    t = cfg.timeout
    alice_user = cfg.user('alice')
    old, new_pw = alice_user['password'], 'changed %s ü' % n

    # -- password change while logged in
    alice = await Client(cfg, alice_user, 'reg-' + n, plugins=('xep_0077',)).connect()
    reg = alice.x['xep_0077']
    stanza = ("<iq type='set'><query xmlns='%s'><username>%s</username><password>...</password></query></iq>"
              % (NS, alice.x.boundjid.user))
    res, err = await call('password change', reg.change_password(new_pw, timeout=t), t)
    if not rep.must('the password change succeeds', res is not None and res['type'] == 'result', 'XEP-0077 §3.3',
                    'type=result', el_str(err) if err is not None else el_str(res), stanza):
        raise Failed('password change refused: %s' % el_str(err))
    c, why = await try_login(cfg, alice_user, 'new-pw-' + n, password=new_pw)
    rep.must('a new login with the new password succeeds', c is not None, 'XEP-0077 §3.3', 'a session', why)
    if c is not None:
        await c.close()
    c, why = await try_login(cfg, alice_user, 'old-pw-' + n, password=old)
    rep.must('a login with the old password fails', c is None and 'authentication failed' in (why or ''),
             'XEP-0077 §3.3 (the password is changed)', 'not-authorized', why or 'logged in')
    if c is not None:
        await c.close()
    res, err = await call('password change back', reg.change_password(old, timeout=t), t)
    rep.must('the password can be changed back', res is not None, 'XEP-0077 §3.3', 'type=result', el_str(err))
    await alice.close()

    if not cfg.expect.get('create'):
        return

    # -- account creation before authentication
    new = cfg.user('new')
    newbie = Client(cfg, new, 'reg-' + n, plugins=('xep_0077',))
    newbie.x['xep_0077'].force_registration = False
    # slixmpp 1.8.3 holds every IQ sent before session start ("NOT SENT"),
    # the plugin's registration form request included, so the 'register'
    # feature handler would wait for its answer forever: let stanzas
    # through before the session (the switch slixmpp's own tests use).
    newbie.x._always_send_everything = True
    seen = {}
    features = []
    newbie.x.add_filter('in', lambda s: (features.append(s.xml) if s.xml.tag.endswith('}features') else None) or s)

    async def on_register(form):
        q = form.xml.find('{%s}query' % NS)
        seen['form'] = el_str(form)
        seen['fields'] = sorted(c.tag.split('}')[1] for c in q) if q is not None else None
        iq = newbie.x.Iq()
        iq['type'] = 'set'
        iq['register']['username'] = newbie.x.boundjid.user
        iq['register']['password'] = new['password']
        try:
            resp = await iq.send(timeout=t)
            seen['result'] = el_str(resp)
        except Exception as e:  # noqa: BLE001 - IqError, IqTimeout: reported
            seen['error'] = el_str(getattr(e, 'iq', None)) or repr(e)
            newbie.x.disconnect()
    newbie.x.add_event_handler('register', on_register)
    try:
        await newbie.connect(presence={})
        created, why = True, str(newbie.x.boundjid)
    except Failed as e:
        created, why = False, str(e)
    offered = [f for f in features if f.find('{%s}register' % NS_FEATURE) is not None]
    rep.must('the server offers <register/> in the stream features', offered, "XEP-0077 'Stream Feature'",
             "<register xmlns='%s'/>" % NS_FEATURE, [el_str(f) for f in features])
    rep.must('the registration form asks for username and password', seen.get('fields') and
             {'username', 'password'} <= set(seen['fields']), 'XEP-0077 §3.1', ['username', 'password'],
             seen.get('form'), "<iq type='get'><query xmlns='%s'/></iq>" % NS)
    stanza = ("<iq type='set'><query xmlns='%s'><username>%s</username><password>...</password></query></iq>"
              % (NS, newbie.x.boundjid.user))
    rep.must('the registration succeeds', 'result' in seen, 'XEP-0077 §3.1', 'type=result', seen.get('error'), stanza)
    rep.must('slixmpp then logs in as the new account on the same stream', created, 'XEP-0077 §3.1',
             'a session as %s' % new['jid'], why)
    if created:
        await newbie.close()
    c, why = await try_login(cfg, new, 'again-' + n)
    rep.must('the new account logs in again on a new stream', c is not None, 'XEP-0077 §3.1', 'a session', why)
    if c is not None:
        await c.close()


if __name__ == '__main__':
    main('xep0077_register', body, description=__doc__.splitlines()[0])
