//go:build !linux

package e2e

import (
	"os/exec"
	"syscall"
)

func rfcSysProcAttr() *syscall.SysProcAttr { return nil }

func rfcKillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
