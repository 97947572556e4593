-- Personal eventing (XEP-0163): a principal's markup nodes. config is
-- core.NodeConfig as JSON (keys are its Go field names), so a field added
-- later needs no migration: rows written before it read as its zero value.
-- Owner and name are real columns: they are what queries select on.
CREATE TABLE pep_nodes (
	owner  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	name   TEXT NOT NULL,
	config TEXT NOT NULL,
	PRIMARY KEY (owner, name)
) WITHOUT ROWID;

-- A node's items. seq orders them, newest highest: an insert takes
-- max(seq) + 1, so a re-published id (deleted, inserted again) becomes
-- the newest. A reused seq after the newest row is deleted names no
-- remembered item (seqs never leave the store), so no AUTOINCREMENT.
-- Items go with their node, and so with its owner's account. payload NULL
-- is an item without payload; stamp is unix nanoseconds UTC, NULL for the
-- zero time.
CREATE TABLE pep_items (
	seq       INTEGER PRIMARY KEY,
	owner     TEXT NOT NULL,
	node      TEXT NOT NULL,
	id        TEXT NOT NULL,
	publisher TEXT NOT NULL,
	stamp     INTEGER,
	payload   BLOB,
	FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, name) ON DELETE CASCADE
);
-- Lookup by id; also the child-key index the cascade from pep_nodes needs.
CREATE UNIQUE INDEX pep_items_id ON pep_items (owner, node, id);
-- Newest first, and trimming to the newest n.
CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);

-- Per-account values (XEP-0049 private XML storage, XEP-0054 vcard-temp),
-- opaque to the store; callers bound their size. A rowid table, not
-- WITHOUT ROWID: values (a vCard photo) can be far larger than a page.
CREATE TABLE account_data (
	owner TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (owner, key)
);
