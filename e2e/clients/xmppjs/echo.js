// An xmpp.js client that echoes chat messages, for tests that pair it with
// another client (the Go tests use a mellium session).
//
//   NODE_EXTRA_CA_CERTS=selfsigned.crt node echo.js \
//     --service xmpp://localhost:5222 --domain localhost \
//     --username bob --password b [--count 1]
//
// Once online it prints "READY jid=<full JID>". Each chat message with a
// body is answered with a chat message "echo: <body>" to its sender. After
// --count messages it prints "RESULT ok ..." and exits; on a failure or the
// timeout it prints "RESULT fail <reason>".

import { args, connect, run, xml, REQUIRED } from "./common.js";

const a = args({
  service: REQUIRED, domain: "localhost", username: REQUIRED, password: REQUIRED,
  resource: "", count: "1", timeout: "30", debug: false,
});

run(a.timeout, async () => {
  const { xmpp, jid, mech } = await connect(a);
  console.log(`READY jid=${jid}`);
  const from = [];
  try {
    for (let n = 0; n < Number(a.count); n++) {
      const msg = await xmpp.expect(
        (s) => s.is("message") && s.attrs.type === "chat" && s.getChildText("body") !== null,
        `chat message ${n + 1}`, Number(a.timeout) * 1000);
      await xmpp.send(xml("message", { to: msg.attrs.from, type: "chat" },
        xml("body", {}, `echo: ${msg.getChildText("body")}`)));
      from.push(msg.attrs.from);
    }
    return { jid, mech, echoed: from.length, from: from.join(",") };
  } finally {
    await xmpp.stop().catch(() => {});
  }
});
