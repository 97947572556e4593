package core

import "time"

// The archive is the durable part of an INSTANT INBOX (DESIGN §2): every
// instant message a principal sent or received, kept for later retrieval
// on any of its agents. The engine defines the types; the protocol layer
// decides what is archived and how it is queried (XEP-0313 in XMPP).

// ArchiveEntry is one archived message in one principal's archive.
type ArchiveEntry struct {
	Owner    PrincipalID
	ID       string  // unique within the owner's archive (the stanza id)
	With     AgentID // the other party as addressed: bare or full
	Outgoing bool    // the owner sent it
	Stamp    time.Time
	Payload  []byte
}

// ArchiveQuery selects a page of one archive. Zero fields do not filter.
type ArchiveQuery struct {
	Owner      PrincipalID
	With       AgentID // bare: every resource of it; full: that one only
	Start, End time.Time
	AfterID    string // entries after this one
	BeforeID   string // entries before this one
	IDs        []string
	Max        int
	// Last pages from the end: the Max newest entries that match (before
	// BeforeID, if set), returned oldest first.
	Last bool
}

// ArchivePage is what a query found.
type ArchivePage struct {
	Entries []ArchiveEntry // oldest first
	// Complete: no further matching entry lies beyond the page in the
	// direction of paging.
	Complete bool
	Count    int // entries matching the filters, ignoring paging
}

// ArchivePrefs are a principal's archiving preferences: the default
// ("always", "never" or "roster"), and addresses always or never archived.
type ArchivePrefs struct {
	Default string
	Always  []string
	Never   []string
}
