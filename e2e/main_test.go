package e2e

import "testing"

func TestMain(m *testing.M) { Main(m) }

// Accounts most tests use.
var (
	alice = User{JID: "alice@localhost", Password: "alice-pw-Ünïcode"}
	bob   = User{JID: "bob@localhost", Password: "bob secret"}
	carol = User{JID: "carol@localhost", Password: "carol,=pw"}
)

func users() []User { return []User{alice, bob, carol} }
