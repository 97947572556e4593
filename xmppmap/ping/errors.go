package ping

import "mellium.im/xmpp/stanza"

var badRequest = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
