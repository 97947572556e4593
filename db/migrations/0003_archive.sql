-- Message archives (XEP-0313): every message a principal sent or received,
-- ordered by (stamp, seq): the stamp is taken when the server routed the
-- message, before any recipient could answer it, so a reply never sorts
-- before what it answers even when the archiver wrote them out of order.
-- with_bare lets a query match every resource of a party. No AUTOINCREMENT: it would rewrite sqlite_sequence on
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
CREATE INDEX archive_owner_stamp ON archive (owner, stamp, seq);
CREATE INDEX archive_owner_with ON archive (owner, with_bare, stamp, seq);

CREATE TABLE archive_prefs (
	owner     TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
	def       TEXT NOT NULL,
	always    TEXT NOT NULL, -- JSON array
	never     TEXT NOT NULL  -- JSON array
) WITHOUT ROWID;
