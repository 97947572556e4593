// Package core implements the presence and instant messaging model of
// RFC 2778, independent of any protocol.
//
// A PRINCIPAL owns a PRESENTITY (its presence) and an INSTANT INBOX. Each of
// its user agents (RFC 2778 §2.6) is an Agent: it may publish a PRESENCE TUPLE,
// watch other presentities and receive INSTANT MESSAGES. WATCHERS are
// SUBSCRIBERS (a directional Subscription per presentity and watcher),
// FETCHERS and POLLERS (counted fetches). Every watcher that subscribed,
// fetched, polled or was refused is kept in WATCHER INFORMATION.
//
// ACCESS RULES decide who receives a presentity's presence, VISIBILITY RULES
// who may read its watcher information, DELIVERY RULES how an instant message
// reaches an inbox. Each is an interface with a default, so protocol
// extensions (blocking, privacy lists) plug in without changing the engine.
//
// The package imports only the standard library and knows nothing of XMPP.
// Every operation runs read → pure transition → write in one Store
// transaction; effects (notifications, deliveries) run only after commit.
package core
