//go:build !linux

package main

import (
	"bufio"
	"os"
	"strings"
)

func isTerminal(*os.File) bool { return false }

func readNoEcho(f *os.File) (string, error) {
	line, err := bufio.NewReader(f).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
