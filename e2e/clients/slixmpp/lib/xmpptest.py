"""What the slixmpp scenario families share: the RFC 6121 scripts
(../rfc6121, through its common.py) and the per-XEP scripts (../xeps,
through its common.py and pepcommon.py).

A family's common.py describes itself with a Suite (its logger, the prefix
of its result line, the report key of the section a check cites, its
configuration class and environment variables, its extra options) and
subclasses Config and Client where it needs more; the scripts import
everything from their family's common.py, which puts this folder on
sys.path (the scripts run as files, with their own folder first on it).

Here: the configuration and command line, the report (one line
``PREFIX {json}`` on stdout, which e2e/report_scripts_test.go parses), main()
with the total timeout, the recording client with its round-trip barrier
and waiting helpers, and stanza predicates and helpers.
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
from slixmpp.xmlstream import tostring

NS_CLIENT = 'jabber:client'
NS_ROSTER = 'jabber:iq:roster'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_PING = 'urn:xmpp:ping'
NS_SID = 'urn:xmpp:sid:0'
NS_DATA = 'jabber:x:data'


def q(ns, local):
    """Clark notation."""
    return '{%s}%s' % (ns, local)


def bare(j):
    """The bare JID of a string, lower-cased for comparison ('' for '')."""
    if not j:
        return ''
    return JID(str(j)).bare.lower()


def nonce():
    return uuid.uuid4().hex[:10]


def el_str(el):
    """An element (or stanza object) as XML text, for reports."""
    if el is None:
        return None
    if hasattr(el, 'xml'):
        el = el.xml
    try:
        return tostring(el, xmlns=NS_CLIENT, top_level=True)
    except Exception:  # noqa: BLE001
        try:
            return ET.tostring(el, encoding='unicode')
        except Exception:  # noqa: BLE001
            return repr(el)


class Failed(Exception):
    """The scenario cannot continue (a precondition failed)."""


# --------------------------------------------------------------------------
# configuration


class Config:
    """The keys every family reads; a family's subclass adds its own and may
    change default_total_timeout."""

    default_total_timeout = 120

    def __init__(self, d):
        self.raw = d
        self.host = d.get('host', '127.0.0.1')
        self.port = int(d.get('port', 5222))
        self.domain = d.get('domain', 'localhost')
        self.ca = d.get('ca') or ''
        self.timeout = float(d.get('timeout', 20))
        self.total_timeout = float(d.get('total_timeout', self.default_total_timeout))
        self.users = d.get('users', {})

    def user(self, role):
        if role not in self.users:
            raise Failed('configuration lacks user %r' % role)
        return self.users[role]

    def jid(self, role):
        return self.user(role)['jid']


class Suite:
    """A family of scenario scripts.

    name: its logger; result_prefix: what starts its report line on stdout;
    ref: the report key of the section a check cites ('rfc', 'xep');
    config: its Config class; config_env: the environment variable that
    may hold the configuration; debug: the default of --debug (slixmpp's
    debug output, with the XML, on stderr); options: (flag, help) of its
    own single-value options, which override the configuration key of
    the same name; timed: report the run time as data.seconds.
    """

    def __init__(self, name, result_prefix, ref, config, config_env, debug=False, options=(), timed=False):
        self.log = logging.getLogger(name)
        self.result_prefix = result_prefix
        self.ref = ref
        self.config = config
        self.config_env = config_env
        self.debug = debug
        self.options = options
        self.timed = timed

    def parse_args(self, description, add_args=None):
        p = argparse.ArgumentParser(description=description)
        p.add_argument('--config', default=os.environ.get(self.config_env, ''),
                       help='JSON file or JSON text (default $%s)' % self.config_env)
        p.add_argument('--host')
        p.add_argument('--port', type=int)
        p.add_argument('--domain')
        p.add_argument('--ca')
        p.add_argument('--timeout', type=float, help='one expected network event, seconds')
        p.add_argument('--total-timeout', type=float, dest='total_timeout', help='the whole scenario, seconds')
        keys = ['host', 'port', 'domain', 'ca', 'timeout', 'total_timeout']
        for flag, text in self.options:
            keys.append(p.add_argument(flag, help=text).dest)
        p.add_argument('--user', nargs=3, action='append', default=[], metavar=('ROLE', 'JID', 'PASSWORD'))
        p.add_argument('--debug', action='store_true', default=self.debug,
                       help="log slixmpp's debug output (with the XML) to stderr")
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
        for k in keys:
            v = getattr(args, k)
            if v is not None:
                d[k] = v
        for role, j, pw in args.user:
            d.setdefault('users', {})[role] = {'jid': j, 'password': pw}
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.WARNING,
                            format='%(asctime)s %(name)s %(levelname)s %(message)s')
        self.log.setLevel(logging.DEBUG if args.debug else logging.INFO)
        return args, self.config(d)

    def main(self, scenario, body, add_args=None, description=None):
        """Parse the configuration, run body(cfg, report, args) under the
        total timeout, close every client, print the report and exit."""
        args, cfg = self.parse_args(description or scenario, add_args)
        report = Report(self, scenario)
        start = time.monotonic()

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
        if self.timed:
            report.data['seconds'] = round(time.monotonic() - start, 2)
        report.emit()
        if report.errors:
            sys.exit(2)
        sys.exit(0 if report.ok else 1)


# --------------------------------------------------------------------------
# the report


class Report:
    """Machine-readable outcome of one scenario."""

    def __init__(self, suite, scenario):
        self.suite = suite
        self.scenario = scenario
        self.checks = []
        self.data = {}
        self.errors = []

    def check(self, level, name, ok, ref='', expected=None, observed=None, stanza=None):
        """Record a check; ref: the section it rests on. Returns bool(ok)."""
        c = {'level': level, 'name': name, 'ok': bool(ok), self.suite.ref: ref}
        if expected is not None:
            c['expected'] = expected
        if observed is not None:
            c['observed'] = observed
        if stanza is not None:
            c['stanza'] = stanza
        self.checks.append(c)
        log = self.suite.log
        log.info('%s %s: %s', 'PASS' if ok else ('FAIL' if level == 'must' else 'WARN'), level, name)
        if not ok:
            log.info('   expected %s\n   observed %s', expected, observed)
        return bool(ok)

    def must(self, name, ok, ref='', expected=None, observed=None, stanza=None):
        return self.check('must', name, ok, ref, expected, observed, stanza)

    def should(self, name, ok, ref='', expected=None, observed=None, stanza=None):
        return self.check('should', name, ok, ref, expected, observed, stanza)

    def info(self, name, observed):
        self.checks.append({'level': 'info', 'name': name, 'ok': True, 'observed': observed})

    def error(self, msg):
        self.suite.log.error('%s', msg)
        self.errors.append(msg)

    @property
    def ok(self):
        return not self.errors and all(c['ok'] for c in self.checks if c['level'] == 'must')

    def emit(self):
        out = {'scenario': self.scenario, 'ok': self.ok, 'errors': self.errors,
               'checks': self.checks, 'data': self.data}
        sys.stdout.write(self.suite.result_prefix + ' ' + json.dumps(out, sort_keys=True, default=str) + '\n')
        sys.stdout.flush()


# --------------------------------------------------------------------------
# clients

_clients = []


async def close_all():
    for c in list(_clients):
        try:
            await c.close(quick=True)
        except Exception:  # noqa: BLE001
            pass


class Client:
    """One slixmpp session with the given plugins that records every
    top-level element it receives and every plugin event it is told to
    track.

    slixmpp's automatic subscription handling is off: slixmpp answers
    subscription requests itself unless told not to (auto_authorize=True
    approves, False *refuses*, sending 'unsubscribed'; None leaves the
    request to the application), so every subscription action is the
    scenario's.
    """

    def __init__(self, cfg, user, resource=None, label=None, plugins=(), password=None):
        self.cfg = cfg
        self.user = user
        self.bare = bare(user['jid'])
        j = user['jid'] + ('/' + resource if resource else '')
        self.label = label or j
        self.x = ClientXMPP(j, password if password is not None else user['password'])
        if cfg.ca:
            self.x.ssl_context.load_verify_locations(cafile=cfg.ca)
        self.x.roster.auto_authorize = None
        self.x.roster.auto_subscribe = False
        self.x.whitespace_keepalive = False
        for name in plugins:
            self.x.register_plugin(name)
        self.x.add_filter('in', self._record)
        self.stanzas = []   # every received top-level element, in order
        self.events = {}    # tracked event name -> [payloads]
        self._event = asyncio.Event()
        self.full = ''
        self.connected = False
        _clients.append(self)

    # -- receiving

    def _kick(self):
        ev, self._event = self._event, asyncio.Event()
        ev.set()

    def _record(self, stanza):
        self.stanzas.append(stanza.xml)
        self._kick()
        return stanza

    def track(self, *names):
        """Record the payloads of these slixmpp events from now on."""
        for name in names:
            if name in self.events:
                continue
            self.events[name] = []

            def handler(payload, name=name):
                self.events[name].append(payload)
                self._kick()
            self.x.add_event_handler(name, handler)

    def mark(self):
        """A cursor: stanzas received from now on have index >= mark()."""
        return len(self.stanzas)

    def emark(self, name):
        return len(self.events[name])

    async def _wait(self, items, pred, what, since, timeout):
        timeout = self.cfg.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        i = since
        while True:
            ev = self._event
            seq = items()
            while i < len(seq):
                if pred(seq[i]):
                    return seq[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed('%s: no %s within %.0fs' % (self.label, what, timeout))
            try:
                await asyncio.wait_for(ev.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_for(self, pred, what, since=0, timeout=None):
        """The first received element at index >= since matching pred;
        Failed after the timeout."""
        return await self._wait(lambda: self.stanzas, pred, what, since, timeout)

    async def try_wait_for(self, pred, what, since=0, timeout=None):
        try:
            return await self.wait_for(pred, what, since, timeout)
        except Failed:
            return None

    async def wait_event(self, name, pred, what, since=0, timeout=None):
        """The first payload of tracked event name at index >= since
        matching pred; Failed after the timeout."""
        return await self._wait(lambda: self.events[name], pred, what, since, timeout)

    async def try_wait_event(self, name, pred, what, since=0, timeout=None):
        try:
            return await self.wait_event(name, pred, what, since, timeout)
        except Failed:
            return None

    def received(self, pred, since=0):
        return [s for s in self.stanzas[since:] if pred(s)]

    # -- connecting

    def login_failure(self, why, ev):
        """The Failed raised when the login ends in event ev."""
        return Failed('%s: %s: %s' % (self.label, why, ev))

    async def connect(self, presence=None, roster=False):
        """Log in (STARTTLS). roster: request the roster first (become an
        interested resource). presence: None for no initial presence, else
        a dict of send_presence arguments ({} for plain available
        presence)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        handlers = []

        def on(event, f):
            self.x.add_event_handler(event, f)
            handlers.append((event, f))

        def ok(_):
            if not done.done():
                done.set_result(True)

        def fail(why):
            def f(ev):
                if not done.done():
                    done.set_exception(self.login_failure(why, ev))
            return f

        on('session_start', ok)
        on('failed_all_auth', fail('authentication failed'))
        on('connection_failed', fail('connection failed'))
        on('stream_error', fail('stream error'))
        on('disconnected', fail('disconnected during login'))
        self.x.connect(address=(self.cfg.host, self.cfg.port))
        try:
            await asyncio.wait_for(done, self.cfg.timeout)
        except asyncio.TimeoutError:
            self.x.cancel_connection_attempt()
            self.x.abort()
            raise Failed('%s: no session within %.0fs' % (self.label, self.cfg.timeout))
        finally:
            for event, f in handlers:
                self.x.del_event_handler(event, f)
        self.connected = True
        self.full = str(self.x.boundjid)
        if roster:
            await self.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
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
            if self.x.transport:
                self.x.abort()
            return
        self.connected = False
        wait = 2 if quick else self.cfg.timeout
        try:
            await asyncio.wait_for(self.x.disconnect(wait=wait), wait + 1)
        except Exception:  # noqa: BLE001
            self.x.abort()

    # -- sending

    def send_raw(self, xml):
        self.x.send_raw(xml)

    def send_presence(self, to=None, type=None, show=None, status=None, priority=None):
        self.x.make_presence(pto=to, ptype=type, pshow=show, pstatus=status, ppriority=priority).send()

    def send_message(self, to, body, mtype='chat', mid=None, extra=()):
        """Send a message; extra: XML snippets appended to it. Returns its id."""
        m = self.x.make_message(mto=to, mbody=body, mtype=mtype)
        m['id'] = mid or ('m-' + nonce())
        for x in extra:
            m.append(ET.fromstring(x))
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

    def features(self):
        """The stream features the server offered."""
        return set(self.x.features)

    async def subscribe_to(self, contact):
        """Subscribe to contact's presence; contact approves. Waits until
        the approval arrived and the roster pushes settled."""
        mc, mu = contact.mark(), self.mark()
        self.send_presence(to=contact.bare, type='subscribe')
        if await contact.try_wait_for(is_presence('subscribe', frm=self.bare), 'subscription request', mc) is None:
            raise Failed('%s got no subscription request from %s' % (contact.label, self.label))
        contact.send_presence(to=self.bare, type='subscribed')
        if await self.try_wait_for(is_presence('subscribed', frm=contact.bare), 'approval', mu) is None:
            raise Failed('%s got no approval from %s' % (self.label, contact.label))
        await contact.barrier()
        await self.barrier()


async def mutual(a, b):
    """a and b subscribe to each other's presence."""
    await a.subscribe_to(b)
    await b.subscribe_to(a)


async def login_all(*clients, **kw):
    await asyncio.gather(*(c.connect(**kw) for c in clients))
    return clients


async def call(what, coro, timeout):
    """Await a plugin call; returns (stanza or None, error stanza or None).
    Failed on a timeout."""
    try:
        return await asyncio.wait_for(coro, timeout + 1), None
    except IqError as e:
        return None, e.iq
    except (IqTimeout, asyncio.TimeoutError):
        raise Failed('no answer to %s within %.0fs' % (what, timeout))


# --------------------------------------------------------------------------
# stanza helpers


def error_of(el):
    """The <error/> of a stanza (an element, a stanza object or None), or None."""
    if el is None:
        return None
    if hasattr(el, 'xml'):
        el = el.xml
    return el.find(q(NS_CLIENT, 'error'))


def error_condition(el):
    """The defined condition of a stanza's <error/>, or ''."""
    err = error_of(el)
    if err is None:
        return ''
    for c in err:
        if c.tag.startswith('{%s}' % NS_STANZAS) and not c.tag.endswith('}text'):
            return c.tag.split('}', 1)[1]
    return ''


def error_type(el):
    err = error_of(el)
    return '' if err is None else err.get('type', '')


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


def status_of(el):
    s = el.find(q(NS_CLIENT, 'status'))
    return None if s is None else (s.text or '')


def presence_summary(el):
    """show / status / priority / type of a presence element."""
    def text(name):
        c = el.find(q(NS_CLIENT, name))
        return None if c is None else (c.text or '')
    return {'from': el.get('from'), 'type': el.get('type'), 'show': text('show'),
            'status': text('status'), 'priority': text('priority')}
