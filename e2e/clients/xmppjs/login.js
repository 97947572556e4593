// Log in to imppd with xmpp.js, fetch the roster, ping the server, log out.
//
//   NODE_EXTRA_CA_CERTS=selfsigned.crt node login.js \
//     --service xmpp://localhost:5222 --domain localhost \
//     --username alice --password secret [--resource r] [--mech PLAIN]
//
// xmpps://host:port selects direct TLS (XEP-0368). Prints
// "RESULT ok jid=... mech=... tls=... roster=N" or "RESULT fail <reason>".

import { args, connect, run, xml, REQUIRED } from "./common.js";

const a = args({
  service: REQUIRED, domain: "localhost", username: REQUIRED, password: REQUIRED,
  resource: "", mech: "", timeout: "30", debug: false,
});

run(a.timeout, async () => {
  const { xmpp, jid, mech, tls, alpn } = await connect(a);
  try {
    const roster = await xmpp.iqCaller.request(
      xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })),
      10000,
    );
    const query = roster.getChild("query", "jabber:iq:roster");
    if (!query) throw new Error(`roster result without <query/>: ${roster}`);
    await xmpp.iqCaller.request(
      xml("iq", { type: "get", to: a.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      10000,
    );
    return { jid, mech, tls, alpn, roster: query.getChildren("item").length, ping: "ok" };
  } finally {
    await xmpp.stop().catch(() => {});
  }
});
