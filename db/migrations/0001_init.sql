-- 0001: imppd's initial schema.
--
-- Times are unix nanoseconds UTC (NULL when unknown). Everything a principal
-- owns references principals(id) ON DELETE CASCADE, so deleting an account
-- removes it and a write for an unknown principal fails. Columns that only
-- name another principal (a watcher, a roster contact, either side of a
-- subscription) carry no foreign key: that principal may be remote or not
-- yet exist (pre-approval); DeleteAccount removes those rows explicitly.

CREATE TABLE principals (
	id      TEXT PRIMARY KEY NOT NULL,
	created INTEGER
);

-- SCRAM (RFC 5802) verifiers only: never a password or SaltedPassword.
CREATE TABLE credentials (
	principal  TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	hash       TEXT NOT NULL,
	salt       BLOB NOT NULL,
	iterations INTEGER NOT NULL,
	stored_key BLOB NOT NULL,
	server_key BLOB NOT NULL,
	PRIMARY KEY (principal, hash)
);

-- One directional relation per (presentity, watcher); the primary key
-- serves Watchers(p), the index serves Watching(w).
CREATE TABLE subscriptions (
	presentity   TEXT NOT NULL,
	watcher      TEXT NOT NULL,
	state        INTEGER NOT NULL,
	pre_approved INTEGER NOT NULL,
	request      BLOB,
	PRIMARY KEY (presentity, watcher)
);
CREATE INDEX subscriptions_by_watcher ON subscriptions (watcher);

-- WATCHER INFORMATION (RFC 2778 §3): the primary key serves
-- WatcherInfo(p); the index serves deleting a watcher's account.
CREATE TABLE watcher_info (
	presentity TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	watcher    TEXT NOT NULL,
	kind       INTEGER NOT NULL,
	count      INTEGER NOT NULL,
	first      INTEGER,
	last       INTEGER,
	PRIMARY KEY (presentity, watcher, kind)
);
CREATE INDEX watcher_info_by_watcher ON watcher_info (watcher);

CREATE TABLE last_presence (
	presentity TEXT PRIMARY KEY NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	basic      INTEGER NOT NULL,
	show       TEXT NOT NULL,
	text       TEXT NOT NULL,
	markup     BLOB,
	stamp      INTEGER
);

-- INSTANT INBOX while no agent takes messages. AUTOINCREMENT so a seq is
-- never reused, even after the newest rows are deleted: a Seq a client or
-- the engine remembers can never name a different message later.
CREATE TABLE offline (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	principal TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	id        TEXT NOT NULL,
	sender    TEXT NOT NULL,
	recipient TEXT NOT NULL,
	kind      INTEGER NOT NULL,
	payload   BLOB,
	storable  INTEGER NOT NULL,
	delayed   INTEGER NOT NULL,
	stamp     INTEGER
);
CREATE INDEX offline_by_principal ON offline (principal, seq);

-- RFC 6121 roster items. groups is a JSON array of strings, kept exactly as
-- given (order and duplicates). The index serves deleting a contact's
-- account from everyone's roster.
CREATE TABLE roster_items (
	owner   TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	contact TEXT NOT NULL,
	name    TEXT NOT NULL,
	groups  TEXT NOT NULL DEFAULT '[]',
	PRIMARY KEY (owner, contact)
);
CREATE INDEX roster_items_by_contact ON roster_items (contact);

-- RFC 6121 §2.6 roster versioning; no row means version 0.
CREATE TABLE roster_versions (
	owner   TEXT PRIMARY KEY NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	version INTEGER NOT NULL
);
