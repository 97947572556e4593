// Two xmpp.js clients log in to imppd, exchange messages both ways and
// ping each other (XEP-0199).
//
//   NODE_EXTRA_CA_CERTS=selfsigned.crt node exchange.js \
//     --service xmpp://localhost:5222 --domain localhost \
//     --username1 alice --password1 a --username2 bob --password2 b \
//     [--service2 xmpps://localhost:5223]
//
// Each message must arrive with the sender's full JID as 'from', its body
// intact and one XEP-0359 stanza-id by the recipient's bare JID. Prints
// "RESULT ok ..." or "RESULT fail <reason>".

import { args, connect, run, xml, REQUIRED } from "./common.js";

const a = args({
  service: REQUIRED, service2: "", domain: "localhost",
  username1: REQUIRED, password1: REQUIRED, username2: REQUIRED, password2: REQUIRED,
  timeout: "30", debug: false,
});

run(a.timeout, async () => {
  const c1 = await connect({ service: a.service, domain: a.domain, username: a.username1, password: a.password1, debug: a.debug });
  const c2 = await connect({ service: a.service2 || a.service, domain: a.domain, username: a.username2, password: a.password2, debug: a.debug });
  const detail = { jid1: c1.jid, jid2: c2.jid, mech: c1.mech };
  try {
    for (const [src, dst, n] of [[c1, c2, 1], [c2, c1, 2]]) {
      const body = `hello from ${src.jid} #${n}`;
      await src.xmpp.send(xml("message", { to: dst.jid, type: "chat", id: `m${n}` }, xml("body", {}, body)));
      const msg = await dst.xmpp.expect(
        (s) => s.is("message") && s.getChildText("body") === body, `message ${n}`);
      if (msg.attrs.from !== src.jid) throw new Error(`message ${n} from=${msg.attrs.from}, want ${src.jid}`);
      const bare = dst.jid.split("/")[0];
      const sids = msg.getChildren("stanza-id", "urn:xmpp:sid:0").filter((e) => e.attrs.by === bare);
      if (sids.length !== 1 || !sids[0].attrs.id) throw new Error(`message ${n} lacks one stanza-id by ${bare}: ${msg}`);

      const res = await src.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: dst.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })), 10000);
      if (res.attrs.from !== dst.jid) throw new Error(`pong from=${res.attrs.from}, want ${dst.jid}`);
      detail[`ping${n}`] = "ok";
    }
    detail.messages = 2;
    return detail;
  } finally {
    await Promise.all([c1.xmpp.stop().catch(() => {}), c2.xmpp.stop().catch(() => {})]);
  }
});
