#!/bin/sh
# Sends one message with Debian's go-sendxmpp (mattn/go-xmpp underneath).
#
#   send.sh --jid alice@localhost --password PW --server localhost:PORT \
#           --ca CERT.pem --to bob@localhost --message TEXT \
#           [--direct-tls] [--timeout 30]
#
# go-sendxmpp is a Go program: SSL_CERT_FILE=CERT.pem makes the server's
# self-signed certificate its only trusted root, so verification stays on
# (no --no-tls-verify). The TLS server name is the JID's domain, so
# --server may be localhost:PORT or 127.0.0.1:PORT. No configuration file
# is read (HOME points to an empty temporary directory).
# Prints "RESULT ok" or "RESULT fail REASON" (exit status 1).
set -u

timeout=30 direct='' jid='' password='' server='' ca='' to='' message=''
while [ $# -gt 0 ]; do
	case "$1" in
	--jid) jid=$2; shift ;;
	--password) password=$2; shift ;;
	--server) server=$2; shift ;;
	--ca) ca=$2; shift ;;
	--to) to=$2; shift ;;
	--message) message=$2; shift ;;
	--timeout) timeout=$2; shift ;;
	--direct-tls) direct=-t ;;
	*) echo "RESULT fail unknown argument $1"; exit 2 ;;
	esac
	shift
done
if [ -z "$jid" ] || [ -z "$server" ] || [ -z "$ca" ] || [ -z "$to" ]; then
	echo "RESULT fail --jid, --server, --ca and --to are required"; exit 2
fi
command -v go-sendxmpp >/dev/null || { echo "RESULT fail go-sendxmpp not found"; exit 1; }

home=$(mktemp -d "${TMPDIR:-/tmp}/imppd-gosendxmpp-XXXXXX")
trap 'rm -rf "$home"' EXIT
err="$home/stderr"
# --timeout is go-sendxmpp's connection timeout; timeout(1) bounds the whole run.
printf '%s\n' "$message" | HOME="$home" SSL_CERT_FILE="$ca" \
	timeout "$timeout" go-sendxmpp $direct --timeout "$timeout" \
	-u "$jid" -p "$password" -j "$server" "$to" 2>"$err"
status=$?
cat "$err" >&2
if [ $status -ne 0 ]; then
	echo "RESULT fail go-sendxmpp exit $status: $(tr '\n' ' ' <"$err")"
	exit 1
fi
echo "RESULT ok"
