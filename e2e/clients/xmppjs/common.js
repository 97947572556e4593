// Shared helpers for the xmpp.js (@xmpp/client 0.14.0) scenarios of
// imppd's end-to-end tests. Each scenario prints exactly one line starting
// with "RESULT ok" or "RESULT fail" and exits 0 on success, 1 on failure,
// 2 on bad usage. Node must trust the server's self-signed certificate:
// run with NODE_EXTRA_CA_CERTS=<data_dir>/tls/selfsigned.crt.

import { client, xml } from "@xmpp/client";

// REQUIRED marks an argument without a default.
export const REQUIRED = Symbol("required");

// args parses "--key value" pairs (and bare "--flag"s) from argv, with
// environment fallbacks IMPPD_<KEY> (upper case, '-' as '_'). spec maps
// each key to its default (a boolean for flags, REQUIRED for no default).
export function args(spec) {
  const out = {};
  for (const [key, def] of Object.entries(spec)) {
    const env = "IMPPD_" + key.toUpperCase().replaceAll("-", "_");
    out[key] = process.env[env] ?? def;
  }
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in spec)) usage(`unknown argument ${argv[i]}`);
    if (m[2] !== undefined) out[m[1]] = m[2];
    else if (typeof spec[m[1]] === "boolean") out[m[1]] = true;
    else if (i + 1 < argv.length) out[m[1]] = argv[++i];
    else usage(`--${m[1]} needs a value`);
  }
  for (const [key, value] of Object.entries(out)) {
    if (value === REQUIRED) usage(`--${key} is required`);
  }
  return out;
}

function usage(msg) {
  console.log(`RESULT fail usage: ${msg}`);
  process.exit(2);
}

// run executes scenario() under an overall timeout (seconds) and prints
// the result line from the object it returns.
export function run(timeoutSeconds, scenario) {
  const timer = setTimeout(() => {
    console.log(`RESULT fail timeout after ${timeoutSeconds}s`);
    process.exit(1);
  }, Number(timeoutSeconds) * 1000);
  scenario().then(
    (detail) => {
      clearTimeout(timer);
      const kv = Object.entries(detail).map(([k, v]) => `${k}=${v}`);
      console.log(`RESULT ok ${kv.join(" ")}`);
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      const cond = err?.condition ? ` (${err.condition})` : "";
      console.log(`RESULT fail ${err?.message ?? err}${cond}`.replaceAll("\n", " "));
      process.exit(1);
    },
  );
}

// connect logs in and resolves to { xmpp, jid, mech, tls }. service is
// xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS); mech
// forces a SASL mechanism (default: xmpp.js's choice).
export async function connect({ service, domain, username, password, resource, mech, debug }) {
  let used = "";
  const xmpp = client({
    service,
    domain,
    resource: resource || undefined,
    credentials: async (authenticate, mechanisms) => {
      used = mech || mechanisms[0];
      if (!mechanisms.includes(used)) {
        throw new Error(`mechanism ${used} not offered (offered and supported: ${mechanisms.join(",")})`);
      }
      await authenticate({ username, password }, used);
    },
  });
  // Tests want one attempt: no reconnection loop.
  xmpp.reconnect.stop();
  const errors = [];
  xmpp.on("error", (err) => errors.push(err));
  if (debug) {
    xmpp.on("input", (s) => console.error("IN ", s));
    xmpp.on("output", (s) => console.error("OUT", s));
  }
  const inbox = [];
  const waiters = [];
  xmpp.on("stanza", (stanza) => {
    const i = waiters.findIndex((w) => w.pred(stanza));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(stanza);
    else inbox.push(stanza);
  });
  // expect resolves with the first stanza matching pred (already received
  // or to come).
  xmpp.expect = (pred, what, ms = 10000) => {
    const i = inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      waiters.push(w);
      setTimeout(() => {
        const j = waiters.indexOf(w);
        if (j >= 0) {
          waiters.splice(j, 1);
          reject(new Error(`timed out waiting for ${what}`));
        }
      }, ms);
    });
  };
  let address;
  try {
    address = await xmpp.start();
  } catch (err) {
    const extra = errors.length ? ` [${errors.map((e) => e.message).join("; ")}]` : "";
    err.message = `login as ${username}@${domain} over ${service}: ${err.message}${extra}`;
    throw err;
  }
  const sock = xmpp.socket?.socket;
  return {
    xmpp,
    jid: address.toString(),
    mech: used,
    tls: sock?.getProtocol?.() ?? "none",
    alpn: sock?.alpnProtocol || "none",
  };
}

export { xml };
