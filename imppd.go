// Package imppd holds what the binary embeds from the repository root.
package imppd

import _ "embed"

// DefaultConfig is config.toml: every setting with its default value.
//
//go:embed config.toml
var DefaultConfig []byte

// Version is the imppd release; builds may override it with -ldflags -X.
var Version = "0.1.0-dev"
