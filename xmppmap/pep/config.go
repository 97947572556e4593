package pep

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

const (
	nsData           = "jabber:x:data"
	formNodeConfig   = NS + "#node_config"
	formPublishOpts  = NS + "#publish-options"
	sendNever        = "never"
	sendOnSub        = "on_sub"
	sendOnSubAndPres = "on_sub_and_presence"
)

// Limits on what one account may keep (RFC 2778's SPAM concern applies to
// storage too): a node keeps at most MaxItemsLimit items ("max" means this
// many), an account at most MaxNodes nodes and MaxBytes of payloads.
const (
	MaxItemsLimit = 1000
	MaxNodes      = 256
	MaxBytes      = 32 << 20
	maxNodeName   = 1023
	maxItemID     = 1023
)

// DefaultConfig is a new node's configuration: XEP-0163 §4.1's defaults
// (presence access, the last item sent on presence), keeping one item.
func DefaultConfig() core.NodeConfig {
	return core.NodeConfig{Access: core.AccessPresence, Persist: true, MaxItems: 1,
		SendLast: sendOnSubAndPres, NotifyRetract: true}
}

// keep is how many items a node with cfg keeps.
func keep(cfg core.NodeConfig) int {
	switch {
	case !cfg.Persist:
		return 1 // the last item is still sent on presence (XEP-0163 §4.3.3)
	case cfg.MaxItems == core.MaxItemsUnbounded || cfg.MaxItems > MaxItemsLimit:
		return MaxItemsLimit
	case cfg.MaxItems < 1:
		return 1
	}
	return cfg.MaxItems
}

var errPrecondition = errors.New("precondition not met")

// field applies one node_config or publish-options field to cfg. An
// unknown field or a value out of range is an error.
func field(cfg *core.NodeConfig, name string, vals []string) error {
	v := ""
	if len(vals) > 0 {
		v = vals[0]
	}
	switch name {
	case "FORM_TYPE":
	case "pubsub#access_model":
		switch v {
		case core.AccessPresence, core.AccessOpen, core.AccessRoster, core.AccessWhitelist:
			cfg.Access = v
		default:
			return fmt.Errorf("access model %q is not supported", v)
		}
	case "pubsub#roster_groups_allowed":
		cfg.Groups = slices.Clone(vals)
	case "pubsub#persist_items":
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		cfg.Persist = b
	case "pubsub#max_items":
		n, err := parseMax(v)
		if err != nil {
			return err
		}
		cfg.MaxItems = n
	case "pubsub#send_last_published_item":
		switch v {
		case sendNever, sendOnSub, sendOnSubAndPres:
			cfg.SendLast = v
		default:
			return fmt.Errorf("send_last_published_item %q is not supported", v)
		}
	case "pubsub#notify_retract":
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		cfg.NotifyRetract = b
	case "pubsub#title":
		cfg.Title = v
	case "pubsub#deliver_payloads", "pubsub#deliver_notifications", "pubsub#presence_based_delivery", "pubsub#notify_delete":
		// Always so here; asking otherwise cannot be honoured.
		// Conversations and nbxmpp send notify_delete=true with bookmarks.
		if b, err := parseBool(v); err != nil || !b {
			return fmt.Errorf("%s must be true", name)
		}
	case "pubsub#notify_config", "pubsub#notify_sub":
		// Never so here: configuration changes and subscriptions are not
		// announced.
		if b, err := parseBool(v); err != nil || b {
			return fmt.Errorf("%s must be false", name)
		}
	case "pubsub#publish_model":
		if v != "publishers" { // only the owner publishes to PEP
			return fmt.Errorf("publish_model %q is not supported", v)
		}
	default:
		return fmt.Errorf("field %q is not supported", name)
	}
	return nil
}

// matches reports whether the precondition name=vals holds for cfg
// (XEP-0060 §7.1.5).
func matches(cfg core.NodeConfig, name string, vals []string) bool {
	want := cfg
	if err := field(&want, name, vals); err != nil {
		return false
	}
	if name == "pubsub#max_items" {
		return keep(want) == keep(cfg)
	}
	if name == "pubsub#roster_groups_allowed" {
		a, b := slices.Clone(want.Groups), slices.Clone(cfg.Groups)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	return want.Access == cfg.Access && want.Persist == cfg.Persist && want.SendLast == cfg.SendLast &&
		want.NotifyRetract == cfg.NotifyRetract && want.Title == cfg.Title
}

func parseBool(v string) (bool, error) {
	switch v {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", v)
}

func parseMax(v string) (int, error) {
	if v == "max" {
		return core.MaxItemsUnbounded, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("max_items %q is not a positive number or \"max\"", v)
	}
	if n > MaxItemsLimit {
		return 0, fmt.Errorf("max_items %d is above the limit of %d", n, MaxItemsLimit)
	}
	return n, nil
}

// formField is one field of a submitted data form, in document order.
type formField struct {
	name string
	vals []string
}

// formFields reads a submitted XEP-0004 form of type formType. A form of
// another FORM_TYPE is an error.
func formFields(x *xmppmap.Element, formType string) ([]formField, error) {
	if x == nil {
		return nil, nil
	}
	var out []formField
	for _, n := range x.Nodes {
		f := n.Elem
		if f == nil || f.Name.Space != nsData || f.Name.Local != "field" {
			continue
		}
		ff := formField{name: f.Get("var")}
		for _, v := range f.Nodes {
			if v.Elem != nil && v.Elem.Name.Space == nsData && v.Elem.Name.Local == "value" {
				ff.vals = append(ff.vals, v.Elem.Text())
			}
		}
		if ff.name == "FORM_TYPE" {
			if len(ff.vals) != 1 || ff.vals[0] != formType {
				return nil, fmt.Errorf("form is not %s", formType)
			}
			continue
		}
		out = append(out, ff)
	}
	return out, nil
}

// configForm renders cfg as a node_config form (XEP-0060 §8.2).
func configForm(cfg core.NodeConfig, typ string) string {
	var b strings.Builder
	b.WriteString("<x xmlns='" + nsData + "' type='" + typ + "'>")
	hidden := func(v string) {
		b.WriteString("<field var='FORM_TYPE' type='hidden'><value>" + v + "</value></field>")
	}
	hidden(formNodeConfig)
	f := func(name, typ, label string, vals []string, opts ...string) {
		b.WriteString("<field var='" + name + "' type='" + typ + "' label='" + xmppmap.Escape(label) + "'>")
		for _, v := range vals {
			b.WriteString("<value>" + xmppmap.Escape(v) + "</value>")
		}
		for _, o := range opts {
			b.WriteString("<option><value>" + o + "</value></option>")
		}
		b.WriteString("</field>")
	}
	bs := func(v bool) []string { return []string{strconv.FormatBool(v)} }
	maxv := strconv.Itoa(cfg.MaxItems)
	if cfg.MaxItems == core.MaxItemsUnbounded {
		maxv = "max"
	}
	f("pubsub#title", "text-single", "A friendly name for the node", []string{cfg.Title})
	f("pubsub#access_model", "list-single", "Who may subscribe and retrieve items", []string{cfg.Access},
		core.AccessOpen, core.AccessPresence, core.AccessRoster, core.AccessWhitelist)
	f("pubsub#roster_groups_allowed", "list-multi", "Roster groups allowed to subscribe", cfg.Groups)
	f("pubsub#persist_items", "boolean", "Persist items to storage", bs(cfg.Persist))
	f("pubsub#max_items", "text-single", "Max # of items to persist (or max)", []string{maxv})
	f("pubsub#send_last_published_item", "list-single", "When to send the last published item", []string{cfg.SendLast},
		sendNever, sendOnSub, sendOnSubAndPres)
	f("pubsub#notify_retract", "boolean", "Notify subscribers when items are removed from the node", bs(cfg.NotifyRetract))
	f("pubsub#deliver_payloads", "boolean", "Deliver payloads with event notifications", bs(true))
	f("pubsub#notify_delete", "boolean", "Notify subscribers when the node is deleted", bs(true))
	f("pubsub#notify_config", "boolean", "Notify subscribers when the configuration changes", bs(false))
	f("pubsub#publish_model", "list-single", "Who may publish", []string{"publishers"}, "publishers")
	b.WriteString("</x>")
	return b.String()
}
