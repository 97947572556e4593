-- Message archives (XEP-0313): every message a principal sent or received,
-- in order of arrival (seq, which grows with time: pruning finds its cut by
-- seq, so stamp needs no index). with_bare lets a query match every
-- resource of a party. No AUTOINCREMENT: it would rewrite sqlite_sequence on
-- every insert, and pruning only ever removes the oldest rows.
CREATE TABLE archive (
	seq       INTEGER PRIMARY KEY,
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

CREATE TABLE archive_prefs (
	owner     TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
	def       TEXT NOT NULL,
	always    TEXT NOT NULL, -- JSON array
	never     TEXT NOT NULL  -- JSON array
) WITHOUT ROWID;
