package e2e

import (
	"os/exec"
	"syscall"
)

// rfcSysProcAttr puts a script in its own process group (so that it and
// any client it started can be killed together) and kills it if the test
// process dies.
func rfcSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// rfcKillGroup kills the script's process group.
func rfcKillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
