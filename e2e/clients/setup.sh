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

# prosody: the reference server of the differential runs (e2e/diff_test.go,
# e2e/prosody.go), which start private instances of their own. The system
# service the package would start is kept from starting (policy-rc.d during
# the install), then stopped and disabled in case a service manager started
# it anyway, so that it never holds port 5222. Works without an init system.
if command -v prosody >/dev/null 2>&1 && command -v prosodyctl >/dev/null 2>&1; then
	echo "setup: prosody present ($(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo 'not from a Debian package'))"
else
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: prosody is missing and installing it needs root" >&2
		exit 1
	fi
	echo "setup: installing prosody with apt-get (its system service is not started)"
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# e2e/clients/setup.sh: no service starts during this install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	status=0
	apt-get update -qq && apt-get install -y -qq --no-install-recommends prosody || status=$?
	if [ -n "$policy" ]; then
		rm -f "$policy"
	fi
	if [ "$status" -ne 0 ]; then
		echo "setup: apt-get install prosody failed ($status)" >&2
		exit 1
	fi
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl stop prosody >/dev/null 2>&1 || true
		systemctl disable prosody >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		service prosody stop >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null 2>&1; then
		update-rc.d prosody disable >/dev/null 2>&1 || true
	fi
	if ! command -v prosodyctl >/dev/null 2>&1; then
		echo "setup: prosodyctl still not found after the install" >&2
		exit 1
	fi
	echo "setup: installed prosody $(dpkg-query -W -f='${Version}' prosody)"
fi
