"""Shared helpers for the slixmpp scenarios of imppd's end-to-end tests.

Run the scenarios with /usr/bin/python3 (Debian's python3-slixmpp 1.8.3).
Each prints exactly one line starting with "RESULT ok" or "RESULT fail"
and exits 0 on success, 1 on failure, 2 on bad usage.
"""

import argparse
import asyncio
import logging
import os
import ssl
import sys
from pathlib import Path

import slixmpp


def parser(description):
    """An argument parser with the options every scenario takes.

    Every option has an environment fallback (IMPPD_HOST, IMPPD_PORT,
    IMPPD_CA, IMPPD_TIMEOUT, IMPPD_DEBUG).
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default=os.environ.get("IMPPD_HOST", "127.0.0.1"),
                   help="server address to connect to (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("IMPPD_PORT", "5222")),
                   help="STARTTLS port, or the direct TLS port with --direct-tls")
    p.add_argument("--ca", default=os.environ.get("IMPPD_CA", ""),
                   help="PEM file of the CA to trust (the server's self-signed certificate)")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("IMPPD_TIMEOUT", "30")),
                   help="overall timeout in seconds")
    p.add_argument("--debug", action="store_true", default=os.environ.get("IMPPD_DEBUG") == "1",
                   help="log slixmpp's debug output (with the XML) to stderr")
    return p


def password_arg(p, name, env):
    p.add_argument("--" + name, default=os.environ.get(env, ""),
                   help="password (or set %s)" % env)


def make_client(jid, password, ca, mech=None, no_channel_binding=False, direct_tls=False):
    """Create a ClientXMPP trusting only ca.

    mech forces one SASL mechanism. no_channel_binding hides the TLS channel
    binding from slixmpp's SCRAM: slixmpp 1.8.3 always computes "tls-unique",
    which TLS 1.3 does not define (RFC 9266), so on TLS 1.3 its -PLUS
    attempts carry bogus binding data, and its plain SCRAM sends the GS2 flag
    'y' ("I could bind but the server can't"). A server that advertises
    -PLUS must refuse 'y' as a downgrade (RFC 5802 section 6), so forcing
    plain SCRAM only works with the binding data hidden, which makes slixmpp
    send 'n' as a client without channel binding support.
    """
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.register_plugin("xep_0030")  # service discovery
    xmpp.register_plugin("xep_0199")  # ping: answers pings, sends them
    if not ca or not Path(ca).is_file():
        raise SystemExit(usage_fail("CA file %r not found" % ca))
    xmpp.ca_certs = Path(ca)
    if direct_tls:
        # XEP-0368: direct TLS carries ALPN "xmpp-client".
        xmpp.ssl_context.set_alpn_protocols(["xmpp-client"])
    fm = xmpp["feature_mechanisms"]
    if mech:
        fm.use_mech = mech
    if no_channel_binding:
        default_callback = fm.sasl_callback

        def credentials(required, optional):
            values = default_callback(required, optional)
            if "channel_binding" in values:
                values["channel_binding"] = None
            return values

        fm.sasl_callback = credentials
    return xmpp


def usage_fail(msg):
    print("RESULT fail usage: %s" % msg, flush=True)
    return 2


async def login(xmpp, host, port, direct_tls):
    """Connect, negotiate and bind; return a dict describing the session.

    Raises RuntimeError with the reason on failure.
    """
    loop = asyncio.get_event_loop()
    done = loop.create_future()
    failures = []

    def fail(reason):
        if not done.done():
            done.set_exception(RuntimeError(reason))

    def on_failed_auth(stanza):
        # One attempt failed; slixmpp goes on with the next mechanism.
        name = xmpp["feature_mechanisms"].mech.name if xmpp["feature_mechanisms"].mech else "?"
        cond = stanza["condition"] if stanza is not None and hasattr(stanza, "__getitem__") else "?"
        failures.append("%s:%s" % (name, cond))

    xmpp.add_event_handler("session_start", lambda _: done.done() or done.set_result(True))
    xmpp.add_event_handler("failed_auth", on_failed_auth)
    xmpp.add_event_handler("failed_all_auth", lambda _: fail("all SASL mechanisms failed: %s" % " ".join(failures)))
    xmpp.add_event_handler("no_auth", lambda _: fail("no usable SASL mechanism offered"))
    xmpp.add_event_handler("connection_failed", lambda e: fail("connection failed: %s" % e))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: fail("TLS certificate not trusted: %s" % e))
    xmpp.add_event_handler("stream_error", lambda e: fail("stream error: %s" % e["condition"]))
    xmpp.add_event_handler("disconnected", lambda _: fail("disconnected during login (SASL failures: %s)" % " ".join(failures)))

    xmpp.connect((host, port), use_ssl=direct_tls)
    await done
    ssl_object = xmpp.transport.get_extra_info("ssl_object") if xmpp.transport else None
    return {
        "jid": str(xmpp.boundjid.full),
        "mech": xmpp["feature_mechanisms"].mech.name,
        "tls": ssl_object.version() if ssl_object else "none",
        "alpn": (ssl_object.selected_alpn_protocol() or "none") if ssl_object else "none",
        "failed": ",".join(failures) or "none",
    }


async def close(xmpp):
    """Close the stream and wait (briefly) for the disconnection."""
    try:
        xmpp.disconnect(wait=2.0)
        await asyncio.wait_for(xmpp.disconnected, 5)
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def run(scenario, args):
    """Run scenario(args) under the overall timeout and print the result."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL,
                        format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        detail = loop.run_until_complete(asyncio.wait_for(scenario(args), args.timeout))
    except asyncio.TimeoutError:
        print("RESULT fail timeout after %ss" % args.timeout, flush=True)
        return 1
    except RuntimeError as e:
        print("RESULT fail %s" % e, flush=True)
        return 1
    print("RESULT ok %s" % " ".join("%s=%s" % kv for kv in detail.items()), flush=True)
    return 0
