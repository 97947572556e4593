#!/usr/bin/env bash
# Drives Debian's Profanity (0.13) in a detached tmux session: logs in,
# sends one message and waits for one to appear on its screen.
#
#   chat.sh --jid alice@localhost --password PW --host 127.0.0.1 --port N \
#           --ca CERT.pem --to bob@localhost --send TEXT --expect TEXT \
#           [--timeout 60] [--artifacts DIR]
#
# Profanity runs with a throwaway HOME (its config, accounts and logs) on a
# tmux server of its own (tmux -L), killed at the end. The server's
# certificate is trusted, not ignored: it goes into a hashed certificate
# directory (openssl x509 -hash) given to "/tls certpath set", and the
# connection uses "tls force" (verification on).
#
# The screen is read with tmux capture-pane, polled until the expected text
# shows up or the deadline passes. Prints, in order:
#   CONNECTED jid=FULLJID      after "logged in successfully"
#   SENT                       once Profanity shows our message as sent
#   RESULT ok jid=FULLJID      once --expect is on the screen
# or "RESULT fail REASON" (exit status 1). With --artifacts, the last screen
# (screen.txt) and Profanity's debug log (profanity.log) are kept there.
set -u

timeout=60 artifacts='' host=127.0.0.1
jid='' password='' port='' ca='' to='' send='' expect=''
while [ $# -gt 0 ]; do
	case "$1" in
	--jid) jid=$2 ;;
	--password) password=$2 ;;
	--host) host=$2 ;;
	--port) port=$2 ;;
	--ca) ca=$2 ;;
	--to) to=$2 ;;
	--send) send=$2 ;;
	--expect) expect=$2 ;;
	--timeout) timeout=$2 ;;
	--artifacts) artifacts=$2 ;;
	*) echo "RESULT fail unknown argument $1"; exit 2 ;;
	esac
	shift 2
done
for v in jid password port ca to send expect; do
	if [ -z "${!v}" ]; then echo "RESULT fail --$v is required"; exit 2; fi
done

deadline=$((SECONDS + timeout))
home=$(mktemp -d "${TMPDIR:-/tmp}/imppd-profanity-XXXXXX")
sock="imppd-prof-$$"
T() { tmux -L "$sock" "$@"; }

screen() { T capture-pane -p -J -t prof 2>/dev/null; }

cleanup() {
	if [ -n "$artifacts" ]; then
		mkdir -p "$artifacts"
		screen >"$artifacts/screen.txt" || true
		cp "$home/.local/share/profanity/logs/profanity.log" "$artifacts/profanity.log" 2>/dev/null || true
	fi
	T kill-server 2>/dev/null || true
	rm -rf "$home"
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP

fail() {
	echo "RESULT fail $*"
	echo "--- last screen:" >&2
	screen | sed '/^[[:space:]]*$/d' >&2
	exit 1
}

# wait_for TEXT [FAILTEXT...]: polls the screen until TEXT (fixed string)
# appears; fails on any FAILTEXT or at the deadline.
wait_for() {
	local want=$1 s bad
	shift
	while [ "$SECONDS" -lt "$deadline" ]; do
		s=$(screen)
		if printf '%s' "$s" | grep -qF -- "$want"; then return 0; fi
		for bad in "$@"; do
			if printf '%s' "$s" | grep -qF -- "$bad"; then fail "screen shows \"$bad\" while waiting for \"$want\""; fi
		done
		sleep 0.2
	done
	fail "timed out waiting for \"$want\" on the screen"
}

type_line() { T send-keys -t prof -l -- "$1" && T send-keys -t prof Enter; }

for cmd in tmux profanity openssl; do
	command -v "$cmd" >/dev/null || { echo "RESULT fail $cmd not found"; exit 1; }
done

mkdir -p "$home/certs" "$home/.config" "$home/.local/share"
cp "$ca" "$home/certs/imppd.pem"
hash=$(openssl x509 -hash -noout -in "$home/certs/imppd.pem") || fail "openssl x509 -hash failed"
ln -s imppd.pem "$home/certs/$hash.0"

T -f /dev/null new-session -d -s prof -x 220 -y 50 \
	env HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
	TERM=xterm-256color LANG=C.UTF-8 profanity -l DEBUG || fail "tmux new-session failed"

wait_for "Type '/help'"
type_line "/tls certpath set $home/certs"
wait_for "Certificate path set to"
type_line "/connect $jid server $host port $port tls force"
wait_for "Enter password" "Login failed" "Could not connect"
type_line "$password"
wait_for "logged in successfully" "Login failed" "TLS certificate verification failed" "Allow connection" "/tls allow"
full=$(screen | grep -oE "[^ ]+ logged in successfully" | head -1 | cut -d' ' -f1)
echo "CONNECTED jid=$full"

type_line "/msg $to $send"
wait_for "me: $send" "Login failed"
echo "SENT"

wait_for "$expect" "Lost connection"
echo "RESULT ok jid=$full"
