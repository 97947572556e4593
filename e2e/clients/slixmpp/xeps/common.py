"""Shared helpers for the per-XEP scenarios, driven by slixmpp's own plugins.

Every scenario script is server-agnostic: where to connect, which CA to
trust and which accounts to use come from a JSON configuration, given as
``--config FILE`` (or ``--config '{...}'``) or in the environment variable
XEPS_CONFIG, with single values overridable on the command line::

    {
      "host": "127.0.0.1", "port": 5222, "domain": "localhost",
      "ca": "/path/to/ca.pem",            # PEM to trust (optional)
      "timeout": 20,                       # one expected network event, s
      "total_timeout": 120,                # the whole scenario, s
      "mech": "SCRAM-SHA-256",             # SASL mechanism to force ("" : slixmpp's choice)
      "users": {"alice": {"jid": "alice@localhost", "password": "..."}, ...},
      "expect": {...}                      # scenario-specific expectations
    }

The scripts (each one's docstring says what it checks; roles are the keys
of "users"):

    xep0012_last.py      alice bob carol   server uptime; a contact's last logout; forbidden to others
    xep0030_disco.py     alice bob carol   info/items of the server, a node, accounts
    xep0050_adhoc.py     alice bob         command list, node info, run urn:imppd:watcher-info, errors
    xep0077_register.py  alice [new]       password change; in-band account creation (expect.create)
    xep0092_version.py   alice bob         version of the server and of a client
    xep0115_caps.py      alice             the server's <c/> verified by the xep_0115 plugin
    xep0133_admin.py     admin user [new]  add-user by an admin (forms), then log in; refused to others
    xep0191_blocking.py  alice bob carol   block / unblock / unblock all, pushes, bounces
    xep0198_sm.py        alice bob         TCP dropped with stanzas in flight, resumed: none lost or doubled
    xep0199_ping.py      alice bob         pings to the server, to a client, to a missing resource
    xep0202_time.py      alice             the server's time
    xep0280_carbons.py   alice bob         received / sent carbons, private, disable
    xep0313_mam.py       alice bob carol   archive query, order, paging both ways, complete
    xep0352_csi.py       alice bob         presence held while inactive, latest on active
    pep_omemo.py         alice bob carol   OMEMO-style PEP: publish-options, +notify, open bundles,
                                           precondition-not-met; --phase publish / after-restart
                                           (e2e/pep_test.go restarts the server in between)
    bookmarks.py         alice bob         XEP-0048 (xep_0048, private XML) <-> XEP-0402 items; a contact
                                           refused, not notified; --phase store / after-restart
    avatars.py           alice bob carol   XEP-0084 (xep_0084) <-> vCard PHOTO (xep_0054) and the hash in
                                           presence (xep_0153); --phase set / after-restart
                                           (e2e/profile_slixmpp_test.go restarts the server in between)

(pepcommon.py holds what the last three share: PEP clients that answer the
server's caps queries, pubsub and error helpers, the two phases.)

(../lib/xmpptest.py holds what this family shares with ../rfc6121: the
report, main(), the recording client, barriers, stanza helpers.)

([new]: an account that must not exist yet; the scenario creates it.)

Run them with /usr/bin/python3 (Debian's python3-slixmpp 1.8.3). A script
prints diagnostics on stderr and, as its last line on stdout, one line
``XEP-RESULT {json}`` holding every check it made: name, level (must /
should / info), whether it passed, the XEP section it rests on, the stanza
sent, what was expected and what was observed; ``data`` carries values for
the caller to assert. Exit status: 0 when every must check passed, 1 when
one failed, 2 when the scenario could not run.

No sleeps are used for synchronisation: after an action the acting client
does an IQ round trip with the server (the server handles one client's
stanzas in order), then every client that must have seen the consequence
does its own round trip (a XEP-0199 ping to the server), after which
everything the server queued for it earlier has arrived; expected stanzas
and plugin events are awaited with a timeout. The one wait on the clock is
XEP-0012's: its 'seconds' counts whole seconds, so seeing seconds >= 1
takes a second.

slixmpp 1.8.3 bugs the scripts steer around (each noted where it is done):
its XEP-0077 registration stalls because IQs sent before session start are
held (xep0077_register.py lets them through); its XEP-0198 <resume/>
clears its own queue of unacknowledged stanzas (xep0198_sm.py has the
server acknowledge alice's stanzas before the drop); its XEP-0202 parser
appends a 'Z' to a <utc/> that already ends in one (xep0202_time.py
parses the text itself).

SASL: slixmpp 1.8.3 computes the "tls-unique" channel binding, which TLS
1.3 does not define, so on TLS 1.3 its -PLUS attempts fail and its plain
SCRAM sends the GS2 flag 'y', which a server advertising -PLUS refuses
(RFC 5802 section 6); it then falls back to PLAIN. Failed attempts count
against servers' per-account throttles, so by default the scripts force
"mech" (SCRAM-SHA-256) and hide the channel binding from slixmpp, which
then sends 'n' as a client without channel binding support.
"""

import os
import sys

sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib'))

import xmpptest  # noqa: E402 - found through the sys.path entry above
from xmpptest import (NS_CLIENT, NS_DATA, NS_PING, NS_ROSTER, NS_SID, NS_STANZAS, Failed, bare,  # noqa: E402,F401
                      body_of, call, close_all, el_str, error_condition, error_of, error_type, is_message, is_presence,
                      mutual, nonce, q, status_of)


class Config(xmpptest.Config):
    def __init__(self, d):
        super().__init__(d)
        self.mech = d.get('mech', 'SCRAM-SHA-256')
        self.expect = d.get('expect', {})


SUITE = xmpptest.Suite('xeps', 'XEP-RESULT', 'xep', Config, 'XEPS_CONFIG',
                       debug=os.environ.get('XEPS_DEBUG') == '1',
                       options=[('--mech', 'SASL mechanism to force ("" for slixmpp\'s own choice)')], timed=True)
main = SUITE.main


class Client(xmpptest.Client):
    """xmpptest's recording client with xep_0030 and xep_0199 besides the
    given plugins, logging in with cfg.mech (see the SASL note above); once
    it sent its initial presence, connect() returns after a round trip."""

    def __init__(self, cfg, user, resource=None, label=None, plugins=(), password=None):
        super().__init__(cfg, user, resource, label, ('xep_0030', 'xep_0199') + tuple(plugins), password)
        fm = self.x['feature_mechanisms']
        if cfg.mech:
            fm.use_mech = cfg.mech
            if not cfg.mech.endswith('-PLUS'):
                default_callback = fm.sasl_callback

                def credentials(required, optional):
                    values = default_callback(required, optional)
                    if 'channel_binding' in values:
                        values['channel_binding'] = None
                    return values

                fm.sasl_callback = credentials
        self.auth_failures = []
        self.x.add_event_handler('failed_auth', lambda s: self.auth_failures.append(
            '%s:%s' % (fm.mech.name if fm.mech else '?', s['condition'] if s is not None else '?')))

    def login_failure(self, why, ev):
        return Failed('%s: %s: %s (SASL failures: %s)' % (
            self.label, why, ev, ' '.join(self.auth_failures) or 'none'))

    async def connect(self, presence=None, roster=False):
        await super().connect(presence, roster)
        if presence is not None:
            # Return once the server has handled the initial presence, so
            # the account counts as available for what follows.
            await self.barrier()
        return self
