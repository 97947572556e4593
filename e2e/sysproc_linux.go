package e2e

import "syscall"

// sysProcAttr makes the kernel kill the server if the test process dies,
// so a crashed or interrupted test run leaves no imppd behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
