#!/usr/bin/python3
"""Log in to imppd with slixmpp, fetch the roster, ping the server, log out.

    /usr/bin/python3 login.py --port 5222 --ca selfsigned.crt \
        --jid alice@localhost --password secret [--mech SCRAM-SHA-1 --no-channel-binding] [--direct-tls]

Prints "RESULT ok jid=... mech=... tls=... alpn=... failed=..." (failed
lists the SASL attempts slixmpp made before the one that worked) or
"RESULT fail <reason>", and exits 0 or 1.
"""

import sys

import common


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--jid", required=True, help="bare JID, or full JID to ask for a resource")
    common.password_arg(p, "password", "IMPPD_PASSWORD")
    p.add_argument("--mech", default="", help="force this SASL mechanism (default: slixmpp's choice)")
    p.add_argument("--no-channel-binding", action="store_true",
                   help="hide TLS channel binding from SCRAM (see common.make_client)")
    p.add_argument("--direct-tls", action="store_true", help="XEP-0368 direct TLS instead of STARTTLS")
    args = p.parse_args()

    async def scenario(args):
        xmpp = common.make_client(args.jid, args.password, args.ca, mech=args.mech or None,
                                  no_channel_binding=args.no_channel_binding, direct_tls=args.direct_tls)
        try:
            info = await common.login(xmpp, args.host, args.port, args.direct_tls)
            if args.mech and info["mech"] != args.mech:
                raise RuntimeError("logged in with %s, not the forced %s" % (info["mech"], args.mech))
            roster = await xmpp.get_roster(timeout=10)
            if roster["type"] != "result":
                raise RuntimeError("roster get: %s" % roster)
            await xmpp["xep_0199"].ping(jid=xmpp.boundjid.domain, timeout=10)
            info["roster"] = "ok"
            info["ping"] = "ok"
            return info
        finally:
            await common.close(xmpp)

    return common.run(scenario, args)


if __name__ == "__main__":
    sys.exit(main())
