"""Shared helpers for the RFC 6121 scenarios, driven by slixmpp.

Every scenario script is server-agnostic: where to connect, which CA to
trust and which accounts to use come from a JSON configuration, given as
``--config FILE`` (or ``--config '{...}'``) or in the environment variable
RFC6121_CONFIG::

    {
      "host": "127.0.0.1", "port": 5222, "domain": "localhost",
      "ca": "/path/to/ca.pem",              # PEM to trust (optional)
      "timeout": 20,                          # one expected network event, s
      "total_timeout": 180,                   # the whole scenario, s
      "users": {"alice": {"jid": "alice@localhost", "password": "..."},
                "bob": {...}, "carol": {...}},
      "pool": [{"jid": ..., "password": ...}, ...],   # only for pairs
      "require_watcher_info": false,         # imppd's XEP-0050 command
      "state": "/tmp/file.json"              # phase-to-phase data
    }

A script prints diagnostics on stderr and, as its last line on stdout, one
line ``RFC6121-RESULT {json}`` holding every check it made: name, level
(must / should / info), whether it passed, the RFC section it rests on,
what was expected and what was observed. Exit status: 0 when every must
check passed, 1 when one failed, 2 when the scenario could not run.

No sleeps are used for synchronisation: a client that must have seen the
consequences of another client's action first waits for that client's IQ
round trip to the server (the server handles one client's stanzas in
order), then does its own round trip (a XEP-0199 ping to the server), after
which everything the server queued for it earlier has arrived.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback
import uuid
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP, JID
from slixmpp.exceptions import IqError, IqTimeout

NS_CLIENT = 'jabber:client'
NS_ROSTER = 'jabber:iq:roster'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_DELAY = 'urn:xmpp:delay'
NS_SID = 'urn:xmpp:sid:0'
NS_PING = 'urn:xmpp:ping'
NS_COMMANDS = 'http://jabber.org/protocol/commands'
NS_DATA = 'jabber:x:data'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'

SUB_TYPES = ('subscribe', 'subscribed', 'unsubscribe', 'unsubscribed')

log = logging.getLogger('rfc6121')


def q(ns, local):
    """Clark notation."""
    return '{%s}%s' % (ns, local)


def bare(j):
    """The bare JID of a string, lower-cased for comparison ('' for '')."""
    if not j:
        return ''
    return JID(j).bare.lower()


def nonce():
    return uuid.uuid4().hex[:10]


# --------------------------------------------------------------------------
# configuration


class Config:
    def __init__(self, d):
        self.raw = d
        self.host = d.get('host', '127.0.0.1')
        self.port = int(d.get('port', 5222))
        self.domain = d.get('domain', 'localhost')
        self.ca = d.get('ca') or ''
        self.timeout = float(d.get('timeout', 20))
        self.total_timeout = float(d.get('total_timeout', 180))
        self.users = d.get('users', {})
        self.pool = d.get('pool', [])
        self.state = d.get('state', '')
        self.require_watcher_info = bool(d.get('require_watcher_info', False))

    def user(self, role):
        if role not in self.users:
            raise SystemExit('configuration lacks user %r' % role)
        return self.users[role]

    def jid(self, role):
        return self.user(role)['jid']


def parse_args(description, add_args=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--config', default=os.environ.get('RFC6121_CONFIG', ''),
                   help='JSON file or JSON text (default $RFC6121_CONFIG)')
    p.add_argument('--host')
    p.add_argument('--port', type=int)
    p.add_argument('--domain')
    p.add_argument('--ca')
    p.add_argument('--timeout', type=float)
    p.add_argument('--state', help='file carrying data between phases')
    p.add_argument('--user', nargs=3, action='append', default=[],
                   metavar=('ROLE', 'JID', 'PASSWORD'))
    if add_args:
        add_args(p)
    args = p.parse_args()
    d = {}
    if args.config:
        text = args.config
        if not text.lstrip().startswith('{'):
            with open(text, encoding='utf-8') as f:
                text = f.read()
        d = json.loads(text)
    for k in ('host', 'port', 'domain', 'ca', 'timeout', 'state'):
        v = getattr(args, k)
        if v is not None:
            d[k] = v
    for role, j, pw in args.user:
        d.setdefault('users', {})[role] = {'jid': j, 'password': pw}
    level = logging.DEBUG if os.environ.get('RFC6121_DEBUG') else logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    log.setLevel(logging.INFO)
    return args, Config(d)


def load_state(cfg):
    if not cfg.state:
        raise SystemExit('this phase needs "state" (a file) in the configuration')
    with open(cfg.state, encoding='utf-8') as f:
        return json.load(f)


def save_state(cfg, data):
    if not cfg.state:
        raise SystemExit('this phase needs "state" (a file) in the configuration')
    with open(cfg.state, 'w', encoding='utf-8') as f:
        json.dump(data, f)


# --------------------------------------------------------------------------
# the report


class Report:
    """Machine-readable outcome of one scenario."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.checks = []
        self.data = {}
        self.errors = []

    def check(self, level, name, ok, rfc='', expected=None, observed=None, stanza=None):
        c = {'level': level, 'name': name, 'ok': bool(ok), 'rfc': rfc}
        if expected is not None:
            c['expected'] = expected
        if observed is not None:
            c['observed'] = observed
        if stanza is not None:
            c['stanza'] = stanza
        self.checks.append(c)
        log.info('%s %s: %s', 'PASS' if ok else ('FAIL' if level == 'must' else 'WARN'), level, name)
        if not ok:
            log.info('   expected %s\n   observed %s', expected, observed)
        return ok

    def must(self, name, ok, rfc='', expected=None, observed=None, stanza=None):
        return self.check('must', name, ok, rfc, expected, observed, stanza)

    def should(self, name, ok, rfc='', expected=None, observed=None, stanza=None):
        return self.check('should', name, ok, rfc, expected, observed, stanza)

    def info(self, name, observed):
        self.checks.append({'level': 'info', 'name': name, 'ok': True, 'observed': observed})

    def error(self, msg):
        log.error('%s', msg)
        self.errors.append(msg)

    @property
    def ok(self):
        return not self.errors and all(c['ok'] for c in self.checks if c['level'] == 'must')

    def emit(self):
        out = {'scenario': self.scenario, 'ok': self.ok, 'errors': self.errors,
               'checks': self.checks, 'data': self.data}
        sys.stdout.write('RFC6121-RESULT ' + json.dumps(out, sort_keys=True) + '\n')
        sys.stdout.flush()


def main(scenario, body, add_args=None, description=None):
    """Parse the configuration, run body(cfg, report, args) under the total
    timeout, close every client, print the report and exit."""
    args, cfg = parse_args(description or scenario, add_args)
    report = Report(scenario)

    async def run():
        try:
            await asyncio.wait_for(body(cfg, report, args), cfg.total_timeout)
        except asyncio.TimeoutError:
            report.error('scenario did not finish within %.0fs' % cfg.total_timeout)
        except Failed as e:
            report.error(str(e))
        except Exception:  # noqa: BLE001 - reported, not hidden
            report.error(traceback.format_exc())
        finally:
            await close_all()

    asyncio.run(run())
    report.emit()
    if report.errors:
        sys.exit(2)
    sys.exit(0 if report.ok else 1)


class Failed(Exception):
    """The scenario cannot continue (a precondition failed)."""


# --------------------------------------------------------------------------
# clients

_clients = []


async def close_all():
    for c in list(_clients):
        try:
            await c.close(quick=True)
        except Exception:  # noqa: BLE001
            pass


def el_str(el):
    try:
        return ET.tostring(el, encoding='unicode')
    except Exception:  # noqa: BLE001
        return repr(el)


class Client:
    """One slixmpp session that records every stanza it receives.

    Automatic subscription handling of slixmpp is off: the scenario decides
    every subscription action itself.
    """

    def __init__(self, cfg, user, resource=None, label=None, plugins=()):
        self.cfg = cfg
        self.user = user
        self.bare = bare(user['jid'])
        j = user['jid'] + ('/' + resource if resource else '')
        self.label = label or j
        self.x = ClientXMPP(j, user['password'])
        if cfg.ca:
            self.x.ssl_context.load_verify_locations(cafile=cfg.ca)
        # slixmpp answers subscription requests itself unless told not to:
        # auto_authorize=True approves, False *refuses* (sends
        # 'unsubscribed'), None leaves the request to the application.
        self.x.roster.auto_authorize = None
        self.x.roster.auto_subscribe = False
        self.x.whitespace_keepalive = False
        for name in plugins:
            self.x.register_plugin(name)
        self.x.add_filter('in', self._record)
        self.stanzas = []  # every received top-level element, in order
        self.pushes = []   # roster pushes: (ver, [item dicts])
        self._event = asyncio.Event()
        self.full = ''
        self.connected = False
        _clients.append(self)

    # -- receiving

    def _record(self, stanza):
        el = stanza.xml
        self.stanzas.append(el)
        if el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'set':
            query = el.find(q(NS_ROSTER, 'query'))
            if query is not None:
                self.pushes.append((query.get('ver'), [parse_item(i) for i in query.findall(q(NS_ROSTER, 'item'))]))
        ev, self._event = self._event, asyncio.Event()
        ev.set()
        return stanza

    def mark(self):
        """A cursor: stanzas received from now on have index >= mark()."""
        return len(self.stanzas)

    async def wait_for(self, pred, what, since=0, timeout=None):
        """The first stanza at index >= since matching pred; Failed after
        the timeout."""
        timeout = self.cfg.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        i = since
        while True:
            ev = self._event
            while i < len(self.stanzas):
                if pred(self.stanzas[i]):
                    return self.stanzas[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed('%s: no %s within %.0fs' % (self.label, what, timeout))
            try:
                await asyncio.wait_for(ev.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def try_wait_for(self, pred, what, since=0, timeout=None):
        try:
            return await self.wait_for(pred, what, since, timeout)
        except Failed:
            return None

    def received(self, pred, since=0):
        return [s for s in self.stanzas[since:] if pred(s)]

    # -- connecting

    async def connect(self, presence=None, roster=False):
        """Log in. roster: request the roster first (become an interested
        resource). presence: None for no initial presence, else a dict
        (show, status, priority) or {} for plain available presence."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ok(_):
            if not done.done():
                done.set_result(True)

        def fail(why):
            def f(ev):
                if not done.done():
                    done.set_exception(Failed('%s: %s: %s' % (self.label, why, ev)))
            return f

        self.x.add_event_handler('session_start', ok, disposable=True)
        self.x.add_event_handler('failed_all_auth', fail('authentication failed'), disposable=True)
        self.x.add_event_handler('connection_failed', fail('connection failed'), disposable=True)
        self.x.add_event_handler('stream_error', fail('stream error'), disposable=True)
        self.x.add_event_handler('disconnected', fail('disconnected during login'), disposable=True)
        self.x.connect(address=(self.cfg.host, self.cfg.port))
        try:
            await asyncio.wait_for(done, self.cfg.timeout)
        except asyncio.TimeoutError:
            self.x.cancel_connection_attempt()
            self.x.abort()
            raise Failed('%s: no session within %.0fs' % (self.label, self.cfg.timeout))
        self.connected = True
        self.full = str(self.x.boundjid)
        if roster:
            await self.roster_get()
        if presence is not None:
            self.send_presence(**presence)
        return self

    async def close(self, quick=False):
        """End the stream with </stream:stream> and wait for the server
        (quick: abort the TCP connection if that takes long)."""
        if self in _clients:
            _clients.remove(self)
        if not self.connected:
            self.x.cancel_connection_attempt()
            return
        self.connected = False
        try:
            fut = self.x.disconnect(wait=2 if quick else self.cfg.timeout)
            await asyncio.wait_for(fut, (2 if quick else self.cfg.timeout) + 1)
        except Exception:  # noqa: BLE001
            self.x.abort()

    # -- sending

    def send_raw(self, xml):
        self.x.send_raw(xml)

    def send_presence(self, to=None, type=None, show=None, status=None, priority=None):
        p = self.x.make_presence(pto=to, ptype=type, pshow=show, pstatus=status,
                                 ppriority=priority)
        p.send()

    def send_message(self, to, body, mtype='chat', mid=None):
        m = self.x.make_message(mto=to, mbody=body, mtype=mtype)
        m['id'] = mid or ('m-' + nonce())
        m.send()
        return m['id']

    async def iq(self, itype, payload, to=None, timeout=None):
        """Send an IQ with an XML payload; the response element. IqError
        (its .iq is the error stanza) for an error response."""
        iq = self.x.make_iq(ito=to, itype=itype)
        if payload is not None:
            iq.append(ET.fromstring(payload) if isinstance(payload, str) else payload)
        try:
            resp = await iq.send(timeout=timeout or self.cfg.timeout)
        except IqTimeout:
            raise Failed('%s: no answer to %s IQ %s within %.0fs' % (
                self.label, itype, payload if isinstance(payload, str) else '', timeout or self.cfg.timeout))
        return resp.xml

    async def barrier(self):
        """A round trip to the server: everything the server queued for
        this session before handling it has arrived when this returns."""
        try:
            await self.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=self.cfg.domain)
        except IqError:
            pass  # an error answer is a round trip too

    async def roster_get(self):
        """The roster as {bare jid: item dict} (a plain get, no version)."""
        resp = await self.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
        query = resp.find(q(NS_ROSTER, 'query'))
        items = {}
        if query is not None:
            for i in query.findall(q(NS_ROSTER, 'item')):
                it = parse_item(i)
                items[it['jid']] = it
        return items

    async def roster_set(self, jid, name=None, groups=(), subscription=None):
        """A roster set; None on success, the error condition otherwise."""
        item = ET.Element(q(NS_ROSTER, 'item'), {'jid': jid})
        if name is not None:
            item.set('name', name)
        if subscription is not None:
            item.set('subscription', subscription)
        for g in groups:
            ET.SubElement(item, q(NS_ROSTER, 'group')).text = g
        query = ET.Element(q(NS_ROSTER, 'query'))
        query.append(item)
        try:
            await self.iq('set', query)
            return None
        except IqError as e:
            return error_condition(e.iq.xml) or 'error'

    def features(self):
        return set(self.x.features)


def parse_item(i):
    return {
        'jid': bare(i.get('jid', '')),
        'subscription': i.get('subscription', 'none'),
        'ask': i.get('ask'),
        'approved': i.get('approved') in ('true', '1'),
        'name': i.get('name'),
        'groups': sorted(g.text or '' for g in i.findall(q(NS_ROSTER, 'group'))),
    }


def error_condition(el):
    """The defined condition of a stanza's <error/>, or ''."""
    err = el.find(q(NS_CLIENT, 'error'))
    if err is None:
        return ''
    for c in err:
        if c.tag.startswith('{%s}' % NS_STANZAS) and not c.tag.endswith('}text'):
            return c.tag.split('}', 1)[1]
    return ''


def error_type(el):
    err = el.find(q(NS_CLIENT, 'error'))
    return '' if err is None else err.get('type', '')


# -- stanza predicates


def is_presence(typ=None, frm=None, full=None):
    """typ: None for available; frm: bare JID; full: exact full JID."""
    def p(el):
        if el.tag != q(NS_CLIENT, 'presence'):
            return False
        t = el.get('type')
        if typ is None:
            if t not in (None, '', 'available'):
                return False
        elif t != typ:
            return False
        if frm is not None and bare(el.get('from')) != bare(frm):
            return False
        if full is not None and (el.get('from') or '') != full:
            return False
        return True
    return p


def is_message(body=None, frm=None, mtype=None):
    def p(el):
        if el.tag != q(NS_CLIENT, 'message'):
            return False
        if mtype is not None and (el.get('type') or 'normal') != mtype:
            return False
        if frm is not None and bare(el.get('from')) != bare(frm):
            return False
        if body is not None:
            b = el.find(q(NS_CLIENT, 'body'))
            if b is None or b.text != body:
                return False
        return True
    return p


def body_of(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


def presence_summary(el):
    """show / status / priority / type of a presence element."""
    def text(name):
        c = el.find(q(NS_CLIENT, name))
        return None if c is None else (c.text or '')
    return {'from': el.get('from'), 'type': el.get('type'), 'show': text('show'),
            'status': text('status'), 'priority': text('priority')}


async def login_all(*clients, **kw):
    await asyncio.gather(*(c.connect(**kw) for c in clients))
    return clients


# --------------------------------------------------------------------------
# imppd's watcher information (RFC 2778 WATCHER INFORMATION as a XEP-0050
# command); other servers need not offer it.

WATCHER_INFO_NODE = 'urn:imppd:watcher-info'
WATCHER_INFO_FIELDS = ('watcher', 'kind', 'count', 'first', 'last')


async def command_nodes(client):
    """The XEP-0050 command nodes the server lists for this account."""
    try:
        resp = await client.iq('get', "<query xmlns='%s' node='%s'/>" % (NS_DISCO_ITEMS, NS_COMMANDS),
                               to=client.cfg.domain)
    except IqError:
        return []
    query = resp.find(q(NS_DISCO_ITEMS, 'query'))
    if query is None:
        return []
    return [i.get('node') for i in query.findall(q(NS_DISCO_ITEMS, 'item'))]


async def watcher_info(client):
    """Run the watcher information command with slixmpp's XEP-0050 plugin.
    Returns (items, raw result XML), items being one dict per form item
    (field var -> value); (None, reason) when the server lacks the command.
    The client must have registered plugin xep_0050 before connecting."""
    nodes = await command_nodes(client)
    if WATCHER_INFO_NODE not in nodes:
        return None, 'command %s not listed (commands: %s)' % (WATCHER_INFO_NODE, nodes)
    try:
        resp = await client.x['xep_0050'].send_command(jid=client.cfg.domain, node=WATCHER_INFO_NODE,
                                                       timeout=client.cfg.timeout)
    except IqError as e:
        return None, 'command failed: %s' % el_str(e.iq.xml)
    except IqTimeout:
        raise Failed('%s: no answer to the watcher information command' % client.label)
    cmd = resp.xml.find(q(NS_COMMANDS, 'command'))
    form = None if cmd is None else cmd.find(q(NS_DATA, 'x'))
    if form is None:
        return None, 'no data form in %s' % el_str(resp.xml)
    items = []
    for it in form.findall(q(NS_DATA, 'item')):
        d = {}
        for f in it.findall(q(NS_DATA, 'field')):
            v = f.find(q(NS_DATA, 'value'))
            d[f.get('var')] = None if v is None else (v.text or '')
        items.append(d)
    return items, el_str(resp.xml)


async def reset_relations(*clients):
    """Bring the given accounts back to "no relation" with each other, so
    that a scenario can be repeated against a long-lived server: each
    cancels and denies the others and removes them from its roster
    (item-not-found is fine). Against a fresh server this changes nothing."""
    for x in clients:
        for y in clients:
            if x.bare == y.bare:
                continue
            x.send_presence(to=y.bare, type='unsubscribed')
            x.send_presence(to=y.bare, type='unsubscribe')
            await x.roster_set(y.bare, subscription='remove')
    for x in clients:
        await x.barrier()
