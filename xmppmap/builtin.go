package xmppmap

// builtinXEPs are the extensions implemented inside xmppmap itself,
// because they are part of how every stanza is routed or every stream
// negotiated rather than a separable feature.
var builtinXEPs = []XEP{
	{Number: 160, Title: "Best Practices for Handling Offline Messages", Version: "1.0.1", Status: "complete", Features: []string{"msgoffline"}},
	{Number: 203, Title: "Delayed Delivery", Version: "2.0", Status: "complete"},
	{Number: 237, Title: "Roster Versioning", Version: "1.3", Status: "complete"},
	{Number: 334, Title: "Message Processing Hints", Version: "0.3.0", Status: "partial: store and no-store decide offline storage"},
	{Number: 359, Title: "Unique and Stable Stanza IDs", Version: "0.7.0", Status: "complete", AccountFeatures: []string{"urn:xmpp:sid:0"}, Features: []string{"urn:xmpp:sid:0"}},
	{Number: 368, Title: "SRV records for XMPP over TLS", Version: "1.1.0", Status: "complete: direct TLS listener with ALPN xmpp-client"},
	{Number: 440, Title: "SASL Channel-Binding Type Capability", Version: "0.4.2", Status: "complete"},
}
