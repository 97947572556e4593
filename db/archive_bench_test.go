package db

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/imppd/imppd/core"
)

// BenchmarkAppendArchive: archive rows written per second in the batches
// the MAM archiver makes (b.N rows in batches of 1024).
func BenchmarkAppendArchive(b *testing.B) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(b.TempDir(), "a.sqlite"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for i := 0; i < 100; i++ {
		if err := d.CreateAccount(ctx, core.Account{ID: core.PrincipalID(fmt.Sprintf("u%d@x", i))}); err != nil {
			b.Fatal(err)
		}
	}
	payload := []byte("<message to='u1@x/r' from='u2@x/r' type='chat' id='m1'><body>Hello, how are you today? This is a typical chat line.</body><stanza-id xmlns='urn:xmpp:sid:0' id='ABCDEFGH12' by='u1@x'/></message>")
	batch := make([]core.ArchiveEntry, 0, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch = append(batch, core.ArchiveEntry{Owner: core.PrincipalID(fmt.Sprintf("u%d@x", i%100)), ID: fmt.Sprintf("id%d", i),
			With: core.AgentID(fmt.Sprintf("u%d@x/r", (i+1)%100)), Stamp: time.Now(), Payload: payload})
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := d.AppendArchive(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
