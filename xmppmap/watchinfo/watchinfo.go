// Package watchinfo shows a user the WATCHER INFORMATION of RFC 2778 §3:
// who subscribed to, fetched, polled or was refused their presence, how
// often and when. It is an XEP-0050 command on the server; the VISIBILITY
// RULES of the core decide who may read it (by default the user alone).
package watchinfo

import (
	"context"
	"errors"
	"strconv"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
	"github.com/imppd/imppd/xmppmap/adhoc"
)

// Node is the command's node.
const Node = "urn:imppd:watcher-info"

// Command returns the command.
func Command() adhoc.Command {
	return adhoc.Command{
		Node: Node,
		Name: "Who watches my presence",
		Run:  run,
	}
}

func run(q *xmppmap.IQ, _ *xmppmap.Element) ([]byte, bool, error) {
	me := q.Account()
	recs, err := q.Server().Engine().WatcherInfo(context.Background(), me, me)
	var refused *core.RefusedError
	if errors.As(err, &refused) {
		return nil, true, adhoc.StanzaError{Err: stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}}
	}
	if err != nil {
		return nil, true, err
	}
	return Form(me, recs), true, nil
}

// Form renders watcher records as an XEP-0004 result form with one item
// per watcher and kind.
func Form(p core.PrincipalID, recs []core.WatcherRecord) []byte {
	x := xmppmap.NewElement(adhoc.NSData, "x", "type", "result")
	x.Append(xmppmap.NewElement(adhoc.NSData, "title")).AppendText("Watchers of " + string(p))
	rep := x.Append(xmppmap.NewElement(adhoc.NSData, "reported"))
	cols := [][3]string{
		{"watcher", "Watcher", "jid-single"}, {"kind", "What", "text-single"},
		{"count", "How often", "text-single"}, {"first", "First", "text-single"}, {"last", "Last", "text-single"},
	}
	for _, c := range cols {
		rep.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", c[0], "label", c[1], "type", c[2]))
	}
	for _, r := range recs {
		it := x.Append(xmppmap.NewElement(adhoc.NSData, "item"))
		for i, v := range []string{string(r.Watcher), r.Kind.String(), strconv.FormatInt(r.Count, 10),
			r.First.UTC().Format(time.RFC3339), r.Last.UTC().Format(time.RFC3339)} {
			f := it.Append(xmppmap.NewElement(adhoc.NSData, "field", "var", cols[i][0]))
			f.Append(xmppmap.NewElement(adhoc.NSData, "value")).AppendText(v)
		}
	}
	return xmppmap.XML(x)
}
