#!/bin/sh
# Installs what the third-party client tests in e2e/clients need, if missing:
#   - Debian's python3-slixmpp (for /usr/bin/python3), via apt-get;
#   - xmpp.js (@xmpp/client, pinned in xmppjs/package-lock.json), via npm ci.
# Idempotent: does nothing when both are present. Runs as root without
# prompts (apt-get needs root; use sudo otherwise). Prints what it did.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

if /usr/bin/python3 -c 'import slixmpp' 2>/dev/null; then
	echo "setup: slixmpp present ($(/usr/bin/python3 -c 'import slixmpp; print(slixmpp.__version__)'))"
else
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: python3-slixmpp is missing and installing it needs root" >&2
		exit 1
	fi
	echo "setup: installing python3-slixmpp with apt-get"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends python3-slixmpp
	/usr/bin/python3 -c 'import slixmpp' || {
		echo "setup: slixmpp still not importable by /usr/bin/python3" >&2
		exit 1
	}
	echo "setup: installed slixmpp $(/usr/bin/python3 -c 'import slixmpp; print(slixmpp.__version__)')"
fi

if [ -d "$here/xmppjs/node_modules/@xmpp/client" ]; then
	echo "setup: xmpp.js present (node_modules exists)"
else
	if ! command -v npm >/dev/null 2>&1; then
		echo "setup: npm not found; install Node.js (>= 20.10) first" >&2
		exit 1
	fi
	echo "setup: installing xmpp.js with npm ci in $here/xmppjs"
	(cd "$here/xmppjs" && npm ci --no-audit --no-fund)
	echo "setup: installed @xmpp/client $(cd "$here/xmppjs" && node -p 'require("@xmpp/client/package.json").version')"
fi

# --- client matrix (e2e/matrix_test.go, docs/INTEROP.md) ---
# go-sendxmpp, Profanity (driven in tmux; openssl hashes its trusted
# certificate directory) always; Gajim under Xvfb with ImageMagick for
# screenshots and its own D-Bus session bus only with IMPPD_E2E_GUI=1,
# plus the unprivileged user Gajim runs as (it refuses root).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
matrix_pkgs="go-sendxmpp profanity tmux openssl"
if [ "${IMPPD_E2E_GUI:-}" = 1 ]; then
	matrix_pkgs="$matrix_pkgs gajim xvfb imagemagick dbus-daemon"
fi
matrix_missing=""
for p in $matrix_pkgs; do
	installed "$p" || matrix_missing="$matrix_missing $p"
done
if [ -z "$matrix_missing" ]; then
	echo "setup: client matrix packages present ($matrix_pkgs)"
else
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup:$matrix_missing missing and installing them needs root" >&2
		exit 1
	fi
	echo "setup: installing$matrix_missing with apt-get"
	apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -qq --no-install-recommends $matrix_missing
fi
if [ "${IMPPD_E2E_GUI:-}" = 1 ] && [ "$(id -u)" -eq 0 ] && ! id imppdgui >/dev/null 2>&1; then
	echo "setup: creating user imppdgui for Gajim"
	useradd --system --create-home --home-dir /var/lib/imppdgui --shell /usr/sbin/nologin imppdgui
fi
