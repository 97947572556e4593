-- XEP-0191 blocklists: the addresses (bare, full, domain or domain/resource
-- JIDs) a principal blocks. Owned by the principal.
CREATE TABLE blocklist (
	owner TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	jid   TEXT NOT NULL,
	PRIMARY KEY (owner, jid)
) WITHOUT ROWID;
