"""What the PEP scenarios share (pep_omemo.py, bookmarks.py, avatars.py).

Clients with xep_0004, xep_0060, xep_0115 and xep_0163 that record what
they send and, after their initial presence, wait until slixmpp has
answered the server's disco#info queries for their XEP-0115 caps (so the
server knows their +notify interests); pubsub and error helpers; and the
two phases each script runs (a first phase, then --phase after-restart
with the state the first one reported).
"""

from slixmpp import Iq

from common import (Client, Failed, NS_CLIENT, call, close_all, el_str, error_condition, error_of, error_type, main,
                    nonce, q)

NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_EVENT = NS_PUBSUB + '#event'
NS_OWNER = NS_PUBSUB + '#owner'
NS_PUBSUB_ERRORS = NS_PUBSUB + '#errors'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_CAPS = 'http://jabber.org/protocol/caps'
NS_DATA = 'jabber:x:data'
PUBLISH_OPTIONS = NS_PUBSUB + '#publish-options'
PEP_PLUGINS = ('xep_0004', 'xep_0060', 'xep_0115', 'xep_0163')


# -- clients


def record_out(c):
    """Record what c sends: IQ requests' XML by id (for reports), the ids
    of its IQ answers (to know slixmpp answered a caps query), presences."""
    c.sent_xml = {}
    c.answers = []
    c.presences = []

    def out(stanza):
        el = stanza.xml
        if el.tag == q(NS_CLIENT, 'presence'):
            c.presences.append(el)
        elif el.tag == q(NS_CLIENT, 'iq'):
            if el.get('type') in ('get', 'set'):
                c.sent_xml[el.get('id')] = str(stanza)
            else:
                c.answers.append(el.get('id'))
                c._kick()
        return stanza
    c.x.add_filter('out', out)


async def login(cfg, role, resource, plugins=(), interests=(), presence=True, caps=False, label=None, rep=None):
    """A client with PEP_PLUGINS and plugins, logged in, with available
    presence unless presence is False. interests: nodes add_interest() is
    called for before the presence, whose XEP-0115 <c/> then advertises
    them (caps: update the caps even without interests). Any disco#info
    query of the server after the presence is answered before this
    returns (c.caps_queries). label: the client's label (default
    role/resource without its last '-' part). rep: with interests, must
    check that the caps advertise them (rep.data['caps'])."""
    c = Client(cfg, cfg.user(role), resource, label=label or '%s/%s' % (role, resource.rsplit('-', 1)[0]),
               plugins=PEP_PLUGINS + tuple(plugins))
    record_out(c)
    await c.connect()
    for node in interests:
        c.x['xep_0163'].add_interest(node)
    if interests or caps:
        await c.x['xep_0115'].update_caps(broadcast=False)
    c.caps_queries = []
    if not presence:
        return c
    m = c.mark()
    c.x.make_presence().send()
    await c.barrier()
    queries = [el for el in c.stanzas[m:] if el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'get'
               and el.find(q(NS_DISCO_INFO, 'query')) is not None]
    for el in queries:
        c.caps_queries.append(el_str(el))
        await c._wait(lambda: c.answers, lambda i, want=el.get('id'): i == want,
                      'its answer to %s' % el.get('id'), 0, None)
    if queries:
        await c.barrier()
    if interests and rep is not None:
        await check_caps(rep, c, interests)
    return c


async def check_caps(rep, c, interests):
    """must: c's last presence <c/> advertises +notify for interests."""
    ver = await c.x['xep_0115'].get_verstring(c.full)
    info = await c.x['xep_0030'].get_info(jid=c.full, local=True)
    if isinstance(info, Iq):
        info = info['disco_info']
    feats = sorted(info['features'])
    sent_caps = [p.find(q(NS_CAPS, 'c')) for p in c.presences]
    sent_caps = [x.attrib for x in sent_caps if x is not None]
    rep.data.setdefault('caps', {})[c.label] = {'ver': str(ver), 'sent': sent_caps, 'server_queries': c.caps_queries}
    want = [n + '+notify' for n in interests]
    rep.must('%s advertises %s in its caps' % (c.label, ', '.join(want)),
             ver and all(w in feats for w in want) and sent_caps and sent_caps[-1].get('ver') == ver,
             'XEP-0163 §4.2 (notification filtering via XEP-0115)',
             {'features': want, 'presence <c/> ver': str(ver)}, {'sent <c/>': sent_caps, 'features': feats})


def sent(c, res, err):
    """The XML c sent for the request answered by res or err."""
    el = res if res is not None else err
    return None if el is None else c.sent_xml.get(el['id'])


async def settle(*clients):
    """A round trip of each client in turn: after the first's (the actor's),
    the server has sent the notifications of its earlier requests."""
    for c in clients:
        await c.barrier()


# -- errors


def app_condition(err):
    """The pubsub#errors condition of an error stanza, or ''."""
    e = error_of(err)
    if e is None:
        return ''
    for c in e:
        if c.tag.startswith('{%s}' % NS_PUBSUB_ERRORS):
            return c.tag.split('}', 1)[1]
    return ''


def error_summary(err):
    return {'type': error_type(err), 'condition': error_condition(err), 'app': app_condition(err),
            'xml': el_str(err)}


# -- pubsub


def form(client, form_type, fields):
    """A submitted data form (text values, as nbxmpp sends them: 'true')."""
    f = client.x['xep_0004'].make_form(ftype='submit')
    f.add_field(var='FORM_TYPE', ftype='hidden', value=form_type)
    for k, v in fields.items():
        f.add_field(var=k, ftype='text-single', value=v)
    return f


def pubsub_items(res):
    """The <item/> elements of a get_items answer."""
    items = res.xml.find('%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'items')))
    return [] if items is None else items.findall(q(NS_PUBSUB, 'item'))


async def node_config(c, node, t):
    """The configuration of c's own node as {var: value(s)}; (values,
    error)."""
    res, err = await call('configuration of %s' % node, c.x['xep_0060'].get_node_config(None, node, timeout=t), t)
    if res is None:
        return None, err
    x = res.xml.find('%s/%s/%s' % (q(NS_OWNER, 'pubsub'), q(NS_OWNER, 'configure'), q(NS_DATA, 'x')))
    vals = {}
    if x is not None:
        for f in x.findall(q(NS_DATA, 'field')):
            vs = [v.text or '' for v in f.findall(q(NS_DATA, 'value'))]
            vals[f.get('var')] = vs[0] if len(vs) == 1 else vs
    return vals, None


def is_true(v):
    return v in ('1', 'true', True)


async def require_account_feature(rep, c, t, feature, xep):
    """must: c's account (disco#info of its bare JID) advertises feature
    (rep.data['account_features']); Failed if not."""
    res, err = await call('disco#info of the account', c.x['xep_0030'].get_info(jid=c.bare, timeout=t), t)
    feats = [] if res is None else sorted(res['disco_info']['features'])
    rep.data.setdefault('account_features', {})[c.label] = feats
    if not rep.must('the account advertises %s' % feature, feature in feats, xep, feature,
                    feats if res is not None else el_str(err)):
        raise Failed('the server does not announce %s: no conversion to test' % feature)


# -- the phases


def run_phases(scenario, doc, first, first_phase, restart_phase):
    """main() for a script with --phase FIRST, after-restart or all (the
    default): first_phase(cfg, rep, nonce) returns the state, reported as
    data.state; restart_phase(cfg, rep, nonce, state) gets it, or
    expect.state when run alone (after the server restarted)."""
    def add_args(p):
        p.add_argument('--phase', choices=(first, 'after-restart', 'all'), default='all',
                       help='%s, after-restart (expect.state from the %s phase) or both' % (first, first))

    async def body(cfg, rep, args):
        n = nonce()
        st = None
        if args.phase in (first, 'all'):
            st = await first_phase(cfg, rep, n)
            rep.data['state'] = st
            if args.phase == 'all':
                await close_all()
        if args.phase in ('after-restart', 'all'):
            if st is None:
                st = cfg.expect.get('state')
            await restart_phase(cfg, rep, n, st)

    main(scenario, body, add_args=add_args, description=doc.splitlines()[0])
