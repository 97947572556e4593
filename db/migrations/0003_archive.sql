-- Message archives (XEP-0313): every message a principal sent or received,
-- in order of arrival (seq). with_bare lets a query match every resource
-- of a party.
CREATE TABLE archive (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	owner     TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	id        TEXT NOT NULL,
	with_full TEXT NOT NULL,
	with_bare TEXT NOT NULL,
	outgoing  INTEGER NOT NULL,
	stamp     INTEGER NOT NULL,
	payload   BLOB NOT NULL
);
CREATE UNIQUE INDEX archive_owner_id ON archive (owner, id);
CREATE INDEX archive_owner_seq ON archive (owner, seq);
CREATE INDEX archive_owner_with ON archive (owner, with_bare, seq);
CREATE INDEX archive_stamp ON archive (stamp);

CREATE TABLE archive_prefs (
	owner     TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
	def       TEXT NOT NULL,
	always    TEXT NOT NULL, -- JSON array
	never     TEXT NOT NULL  -- JSON array
) WITHOUT ROWID;
