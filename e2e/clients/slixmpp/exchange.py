#!/usr/bin/python3
"""Two slixmpp clients log in to imppd, exchange messages and ping each other.

    /usr/bin/python3 exchange.py --port 5222 --ca selfsigned.crt \
        --jid1 alice@localhost --password1 a --jid2 bob@localhost --password2 b

Both use STARTTLS and slixmpp's default SASL choice. Checks: each message
arrives with the sender's full JID as 'from' and the body intact, carries a
XEP-0359 stanza-id by the recipient's bare JID; each client's ping (XEP-0199)
to the other's full JID gets a result. Prints "RESULT ok ..." or
"RESULT fail <reason>", and exits 0 or 1.
"""

import asyncio
import sys

import common

SID = "{urn:xmpp:sid:0}stanza-id"


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--jid1", required=True)
    common.password_arg(p, "password1", "IMPPD_PASSWORD1")
    p.add_argument("--jid2", required=True)
    common.password_arg(p, "password2", "IMPPD_PASSWORD2")
    args = p.parse_args()

    async def scenario(args):
        loop = asyncio.get_event_loop()
        clients = [common.make_client(args.jid1, args.password1, args.ca),
                   common.make_client(args.jid2, args.password2, args.ca)]
        inboxes = [asyncio.Queue(), asyncio.Queue()]
        for xmpp, inbox in zip(clients, inboxes):
            xmpp.add_event_handler("message", lambda msg, inbox=inbox: inbox.put_nowait(msg))
        try:
            infos = await asyncio.gather(*(common.login(x, args.host, args.port, False) for x in clients))
            detail = {}
            for i, (sender, receiver) in enumerate([(0, 1), (1, 0)]):
                src, dst = clients[sender], clients[receiver]
                body = "hello from %s #%d" % (src.boundjid.full, i)
                src.send_message(mto=dst.boundjid.full, mbody=body, mtype="chat")
                msg = await asyncio.wait_for(inboxes[receiver].get(), 10)
                if msg["body"] != body:
                    raise RuntimeError("%s got body %r, want %r" % (dst.boundjid, msg["body"], body))
                if str(msg["from"]) != str(src.boundjid.full):
                    raise RuntimeError("message from=%s, want %s" % (msg["from"], src.boundjid.full))
                sids = [e for e in msg.xml.findall(SID) if e.get("by") == dst.boundjid.bare]
                if len(sids) != 1 or not sids[0].get("id"):
                    raise RuntimeError("message lacks one stanza-id by %s: %s" % (dst.boundjid.bare, msg))
                rtt = await src["xep_0199"].ping(jid=dst.boundjid, timeout=10)
                detail["ping%d" % (sender + 1)] = "%.1fms" % (rtt * 1000)
            detail["jid1"] = infos[0]["jid"]
            detail["jid2"] = infos[1]["jid"]
            detail["mech"] = infos[0]["mech"]
            detail["messages"] = "2"
            return detail
        finally:
            await asyncio.gather(*(common.close(x) for x in clients))

    return common.run(scenario, args)


if __name__ == "__main__":
    sys.exit(main())
