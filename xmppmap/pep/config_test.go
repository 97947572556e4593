package pep

import (
	"strings"
	"testing"

	"github.com/imppd/imppd/core"
	"github.com/imppd/imppd/xmppmap"
)

func TestKeep(t *testing.T) {
	for _, tc := range []struct {
		cfg  core.NodeConfig
		want int
	}{
		{core.NodeConfig{Persist: true, MaxItems: 10}, 10},
		{core.NodeConfig{Persist: true, MaxItems: core.MaxItemsUnbounded}, MaxItemsLimit},
		{core.NodeConfig{Persist: true, MaxItems: MaxItemsLimit + 5}, MaxItemsLimit},
		{core.NodeConfig{Persist: true, MaxItems: 0}, 1},
		{core.NodeConfig{Persist: false, MaxItems: 50}, 1}, // only the last item, for presence
	} {
		if got := keep(tc.cfg); got != tc.want {
			t.Errorf("keep(%+v) = %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

func TestField(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals []string
		ok   bool
		want func(core.NodeConfig) bool
	}{
		{"pubsub#access_model", []string{"open"}, true, func(c core.NodeConfig) bool { return c.Access == core.AccessOpen }},
		{"pubsub#access_model", []string{"whitelist"}, true, func(c core.NodeConfig) bool { return c.Access == core.AccessWhitelist }},
		{"pubsub#access_model", []string{"authorize"}, false, nil}, // not offered on PEP
		{"pubsub#access_model", nil, false, nil},
		{"pubsub#max_items", []string{"max"}, true, func(c core.NodeConfig) bool { return c.MaxItems == core.MaxItemsUnbounded }},
		{"pubsub#max_items", []string{" 7 "}, true, func(c core.NodeConfig) bool { return c.MaxItems == 7 }},
		{"pubsub#max_items", []string{"0"}, false, nil},
		{"pubsub#max_items", []string{"1001"}, false, nil},
		{"pubsub#max_items", []string{"-1"}, false, nil},
		{"pubsub#persist_items", []string{"1"}, true, func(c core.NodeConfig) bool { return c.Persist }},
		{"pubsub#persist_items", []string{"false"}, true, func(c core.NodeConfig) bool { return !c.Persist }},
		{"pubsub#persist_items", []string{"yes"}, false, nil},
		{"pubsub#send_last_published_item", []string{"never"}, true, func(c core.NodeConfig) bool { return c.SendLast == "never" }},
		{"pubsub#send_last_published_item", []string{"on_sub"}, true, func(c core.NodeConfig) bool { return c.SendLast == "on_sub" }},
		{"pubsub#send_last_published_item", []string{"always"}, false, nil},
		{"pubsub#notify_retract", []string{"0"}, true, func(c core.NodeConfig) bool { return !c.NotifyRetract }},
		{"pubsub#roster_groups_allowed", []string{"a", "b"}, true, func(c core.NodeConfig) bool { return strings.Join(c.Groups, ",") == "a,b" }},
		{"pubsub#title", []string{"Mood"}, true, func(c core.NodeConfig) bool { return c.Title == "Mood" }},
		{"pubsub#deliver_payloads", []string{"true"}, true, func(core.NodeConfig) bool { return true }},
		{"pubsub#deliver_payloads", []string{"false"}, false, nil}, // cannot be honoured
		{"pubsub#notify_delete", []string{"true"}, true, func(core.NodeConfig) bool { return true }},
		{"pubsub#notify_delete", []string{"0"}, false, nil},
		{"pubsub#notify_config", []string{"false"}, true, func(core.NodeConfig) bool { return true }},
		{"pubsub#notify_config", []string{"1"}, false, nil},
		{"pubsub#publish_model", []string{"publishers"}, true, func(core.NodeConfig) bool { return true }},
		{"pubsub#publish_model", []string{"open"}, false, nil},
		{"pubsub#unknown", []string{"x"}, false, nil},
		{"FORM_TYPE", []string{"anything"}, true, func(core.NodeConfig) bool { return true }},
	} {
		cfg := DefaultConfig()
		err := field(&cfg, tc.name, tc.vals)
		if (err == nil) != tc.ok {
			t.Errorf("%s=%q: err %v", tc.name, tc.vals, err)
			continue
		}
		if tc.ok && !tc.want(cfg) {
			t.Errorf("%s=%q: config %+v", tc.name, tc.vals, cfg)
		}
	}
}

func TestMatches(t *testing.T) {
	node := core.NodeConfig{Access: core.AccessOpen, Persist: true, MaxItems: core.MaxItemsUnbounded, SendLast: "never",
		NotifyRetract: true, Groups: []string{"b", "a"}}
	for _, tc := range []struct {
		name string
		vals []string
		want bool
	}{
		{"pubsub#access_model", []string{"open"}, true},
		{"pubsub#access_model", []string{"presence"}, false},
		{"pubsub#max_items", []string{"max"}, true},
		{"pubsub#max_items", []string{"1000"}, true}, // the same number of items kept
		{"pubsub#max_items", []string{"5"}, false},
		{"pubsub#persist_items", []string{"true"}, true},
		{"pubsub#persist_items", []string{"false"}, false},
		{"pubsub#send_last_published_item", []string{"never"}, true},
		{"pubsub#send_last_published_item", []string{"on_sub_and_presence"}, false},
		{"pubsub#roster_groups_allowed", []string{"a", "b"}, true}, // order does not matter
		{"pubsub#roster_groups_allowed", []string{"a"}, false},
		{"pubsub#access_model", []string{"bogus"}, false},
		{"pubsub#whatever", []string{"1"}, false},
	} {
		if got := matches(node, tc.name, tc.vals); got != tc.want {
			t.Errorf("matches(%s=%q) = %v, want %v", tc.name, tc.vals, got, tc.want)
		}
	}
}

func TestFormFields(t *testing.T) {
	parse := func(s string) *xmppmap.Element {
		el, err := xmppmap.ParseElement([]byte(s), 8)
		if err != nil {
			t.Fatal(err)
		}
		return el
	}
	x := parse(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + formPublishOpts + `</value></field>` +
		`<field var='pubsub#access_model'><value>open</value></field><field var='pubsub#roster_groups_allowed'><value>a</value><value>b</value></field></x>`)
	fs, err := formFields(x, formPublishOpts)
	if err != nil || len(fs) != 2 || fs[0].name != "pubsub#access_model" || strings.Join(fs[1].vals, ",") != "a,b" {
		t.Fatalf("fields %+v, %v", fs, err)
	}
	if _, err := formFields(x, formNodeConfig); err == nil {
		t.Error("a publish-options form accepted as node_config")
	}
	if fs, err := formFields(nil, formNodeConfig); err != nil || fs != nil {
		t.Errorf("no form: %v %v", fs, err)
	}
	// A rendered configuration parses back to the same configuration.
	cfg := core.NodeConfig{Access: core.AccessRoster, Groups: []string{"Friends"}, Persist: true, MaxItems: core.MaxItemsUnbounded,
		SendLast: "on_sub", NotifyRetract: false, Title: "a <title> & 'quotes'"}
	fs, err = formFields(parse(configForm(cfg, "submit")), formNodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	got := DefaultConfig()
	for _, f := range fs {
		if err := field(&got, f.name, f.vals); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	if got.Access != cfg.Access || strings.Join(got.Groups, ",") != "Friends" || got.Persist != cfg.Persist || got.MaxItems != cfg.MaxItems ||
		got.SendLast != cfg.SendLast || got.NotifyRetract != cfg.NotifyRetract || got.Title != cfg.Title {
		t.Errorf("round trip: %+v, want %+v", got, cfg)
	}
}
