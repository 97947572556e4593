package e2e

import (
	"strings"
	"testing"
)

const nsCmd = "http://jabber.org/protocol/commands"

// runCommand executes an ad-hoc command and, if it asks for a form,
// submits fields (var → values) in a second stage. It returns the last
// response.
func runCommand(t *testing.T, c *Client, node string, fields map[string][]string) *Element {
	t.Helper()
	id := c.NewID("cmd")
	el := c.IQ(id, "<iq type='set' id='"+id+"' to='localhost'><command xmlns='"+nsCmd+"' node='"+node+"' action='execute'/></iq>")
	cmd := el.Child(nsCmd, "command")
	if el.Get("type") != "result" || cmd == nil || cmd.Get("status") != "executing" {
		return el
	}
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'>")
	for k, vs := range fields {
		b.WriteString("<field var='" + k + "'>")
		for _, v := range vs {
			b.WriteString("<value>" + Esc(v) + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	id2 := c.NewID("cmd")
	return c.IQ(id2, "<iq type='set' id='"+id2+"' to='localhost'><command xmlns='"+nsCmd+"' node='"+node+"' sessionid='"+cmd.Get("sessionid")+"' action='complete'>"+b.String()+"</command></iq>")
}

func TestAdminCommands(t *testing.T) {
	s := Start(t, Options{Users: []User{{"root@localhost", "pw-r"}, {"alice@localhost", "pw-a"}}, Admins: []string{"root@localhost"}})
	root := s.Login(t, "root@localhost", "pw-r")
	alice := s.Login(t, "alice@localhost", "pw-a")
	alice.MustSend("<presence/>")

	// Not listed for, and refused to, a non-admin.
	items := alice.IQ("i", "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='"+nsCmd+"'/></iq>")
	if strings.Contains(items.String(), "admin#") {
		t.Fatalf("alice sees admin commands: %s", items)
	}
	if el := runCommand(t, alice, "http://jabber.org/protocol/admin#add-user", nil); !strings.Contains(el.String(), "forbidden") {
		t.Fatalf("alice ran add-user: %s", el)
	}
	if el := runCommand(t, root, "http://jabber.org/protocol/admin#add-user", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"pw-c"}, "password-verify": {"pw-c"}}); !strings.Contains(el.String(), "status='completed'") {
		t.Fatalf("add-user: %s", el)
	}
	carol := s.Login(t, "carol@localhost", "pw-c")
	if el := runCommand(t, root, "http://jabber.org/protocol/admin#get-online-users-list", nil); !strings.Contains(el.String(), "carol@localhost/") || !strings.Contains(el.String(), "alice@localhost/") {
		t.Fatalf("online users: %s", el)
	}
	if el := runCommand(t, root, "http://jabber.org/protocol/admin#announce", map[string][]string{"subject": {"Maintenance"}, "announcement": {"Back soon", "really"}}); !strings.Contains(el.String(), "completed") {
		t.Fatalf("announce: %s", el)
	}
	alice.Expect(IOTimeout, "announcement", func(e *Element) bool {
		b := e.Child(NSClient, "body")
		return e.Is(NSClient, "message") && e.Get("type") == "headline" && b != nil && b.Text == "Back soon\nreally"
	})
	if el := runCommand(t, root, "http://jabber.org/protocol/admin#change-user-password", map[string][]string{"accountjid": {"alice@localhost"}, "password": {"new-a"}}); !strings.Contains(el.String(), "completed") {
		t.Fatalf("change password: %s", el)
	}
	s.Login(t, "alice@localhost", "new-a")
	if el := runCommand(t, root, "http://jabber.org/protocol/admin#delete-user", map[string][]string{"accountjids": {"carol@localhost"}}); !strings.Contains(el.String(), "completed") {
		t.Fatalf("delete user: %s", el)
	}
	if cond, err := carol.StreamErrorCondition(IOTimeout); err != nil || cond != "not-authorized" {
		t.Fatalf("deleted user's session: %q %v", cond, err)
	}
}
