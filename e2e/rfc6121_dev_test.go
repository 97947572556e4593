package e2e

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TEMPORARY development helper (removed before hand-off).
func TestRFC6121DevHold(t *testing.T) {
	if os.Getenv("RFC6121_HOLD") == "" {
		t.Skip()
	}
	pool := rfcPool(24)
	s := Start(t, Options{Users: rfcUsers(pool...)})
	cfg := rfcConfigFor(t, s)
	for _, u := range pool {
		cfg.Pool = append(cfg.Pool, rfcUser{JID: u.JID, Password: u.Password})
	}
	b, _ := json.Marshal(cfg)
	os.WriteFile("/tmp/rfcdev.json", b, 0o644)
	os.Remove("/tmp/rfcdev.stop")
	for {
		if _, err := os.Stat("/tmp/rfcdev.stop"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	os.WriteFile("/tmp/rfcdev.log", []byte(s.Log().String()), 0o644)
}
