#!/usr/bin/python3
"""Writes a Gajim 1.7 profile under --home that logs in on start.

Gajim 1.7 keeps its settings in $XDG_CONFIG_HOME/gajim/settings.sqlite: two
tables, settings(name, settings) and account_settings(account, settings),
each row holding a JSON object (schema: gajim.common.settings.CREATE_SQL,
imported from Debian's gajim so the file is exactly what Gajim would
create). Certificates the user chose to trust are PEM files in
$XDG_DATA_HOME/gajim/cert_store/; Gajim lifts the "unknown CA" error for a
server certificate identical to one of them (gajim.common.cert_store), so
the server's self-signed certificate goes there: it is trusted, not ignored.

The account is active with autoconnect, the password stored in the settings
(use_keyring false: no keyring daemon here), the connection pinned to
--host:--port (STARTTLS, or direct TLS with --direct-tls). Prompts that
would wait for a click on a fresh profile are turned off.

Run with /usr/bin/python3 (Debian's gajim modules).
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--home', required=True, help='HOME of the Gajim user')
    p.add_argument('--jid', required=True, help='user@domain')
    p.add_argument('--password', required=True)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--direct-tls', action='store_true')
    p.add_argument('--resource', default='gajim')
    p.add_argument('--ca', required=True, help="the server's PEM certificate")
    p.add_argument('--account', default='imppd', help="Gajim's account name")
    a = p.parse_args()

    try:
        from gajim.common.settings import CREATE_SQL, CURRENT_USER_VERSION
    except Exception as e:  # noqa: BLE001
        print(f'RESULT fail cannot import gajim.common.settings: {e}')
        return 1
    if CURRENT_USER_VERSION != 5:
        # The JSON layout below is that of schema version 5 (Gajim 1.7).
        print(f'RESULT fail unknown Gajim settings schema {CURRENT_USER_VERSION}')
        return 1

    user, _, domain = a.jid.partition('@')
    config = os.path.join(a.home, '.config', 'gajim')
    data = os.path.join(a.home, '.local', 'share', 'gajim')
    certs = os.path.join(data, 'cert_store')
    for d in (config, certs):
        os.makedirs(d, mode=0o700, exist_ok=True)
    shutil.copyfile(a.ca, os.path.join(certs, 'imppd-selfsigned.pem'))

    path = os.path.join(config, 'settings.sqlite')
    if os.path.exists(path):
        os.unlink(path)
    con = sqlite3.connect(path)
    con.executescript(CREATE_SQL)
    app = {
        'use_keyring': False,            # password in the settings below
        'check_for_update': False,
        'show_help_start_chat': False,
        'autoaway': False,               # Xvfb has no input: stay online
        'autoxa': False,
        'remote_control': False,
        'show_main_window_on_startup': 'always',
        'is_window_visible': True,
    }
    con.execute("UPDATE settings SET settings = ? WHERE name = 'app'", (json.dumps(app),))
    account = {
        'account': {
            'active': True,
            'autoconnect': True,
            'name': user,
            'hostname': domain,
            'password': a.password,
            'savepass': True,
            'resource': a.resource,
            'use_custom_host': True,
            'custom_host': a.host,
            'custom_port': a.port,
            'custom_type': 'DIRECT TLS' if a.direct_tls else 'START TLS',
            'answer_receipts': True,
            'confirm_unencrypted_connection': True,
            'send_os_info': False,
            'request_user_data': False,
        },
        'contact': {},
        'group_chat': {},
    }
    con.execute('INSERT INTO account_settings(account, settings) VALUES(?, ?)',
                (a.account, json.dumps(account)))
    con.commit()
    con.close()
    os.chmod(path, 0o600)
    print(f'RESULT ok settings={path} cert={certs}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
