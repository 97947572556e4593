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

../lib/xmpptest.py holds what this family shares with ../xeps (the
report, main(), the recording client, barriers, stanza helpers); this file
adds the RFC 6121 configuration keys, roster pushes, roster get and set,
and imppd's watcher information.
"""

import json
import os
import sys
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib'))

import xmpptest  # noqa: E402 - found through the sys.path entry above
from xmpptest import (NS_CLIENT, NS_DATA, NS_PING, NS_ROSTER, NS_SID, NS_STANZAS, Failed, bare,  # noqa: E402,F401
                      body_of, close_all, error_condition, error_type, is_message, is_presence, login_all, nonce,
                      presence_summary, q)

NS_DELAY = 'urn:xmpp:delay'
NS_COMMANDS = 'http://jabber.org/protocol/commands'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'

SUB_TYPES = ('subscribe', 'subscribed', 'unsubscribe', 'unsubscribed')


def el_str(el):
    """An element as ElementTree writes it, for reports."""
    try:
        return ET.tostring(el, encoding='unicode')
    except Exception:  # noqa: BLE001
        return repr(el)


# --------------------------------------------------------------------------
# configuration


class Config(xmpptest.Config):
    default_total_timeout = 180

    def __init__(self, d):
        super().__init__(d)
        self.pool = d.get('pool', [])
        self.state = d.get('state', '')
        self.require_watcher_info = bool(d.get('require_watcher_info', False))


SUITE = xmpptest.Suite('rfc6121', 'RFC6121-RESULT', 'rfc', Config, 'RFC6121_CONFIG',
                       debug=bool(os.environ.get('RFC6121_DEBUG')),
                       options=[('--state', 'file carrying data between phases')])
main = SUITE.main


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
# clients


class Client(xmpptest.Client):
    """xmpptest's recording client, with the roster pushes it receives
    (pushes: (ver, [item dicts])) and roster get and set."""

    def __init__(self, cfg, user, resource=None, label=None, plugins=()):
        self.pushes = []
        super().__init__(cfg, user, resource, label, plugins)

    def _record(self, stanza):
        el = stanza.xml
        if el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'set':
            query = el.find(q(NS_ROSTER, 'query'))
            if query is not None:
                self.pushes.append((query.get('ver'), [parse_item(i) for i in query.findall(q(NS_ROSTER, 'item'))]))
        return super()._record(stanza)

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


def parse_item(i):
    return {
        'jid': bare(i.get('jid', '')),
        'subscription': i.get('subscription', 'none'),
        'ask': i.get('ask'),
        'approved': i.get('approved') in ('true', '1'),
        'name': i.get('name'),
        'groups': sorted(g.text or '' for g in i.findall(q(NS_ROSTER, 'group'))),
    }


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
