#!/usr/bin/python3
"""Runs Debian's Gajim 1.7 under Xvfb, logged in to imppd from a pre-seeded
profile, and takes screenshots on request.

Gajim refuses to run as root: when this script runs as root, Gajim runs as
--user (created with useradd when missing) in a throwaway HOME owned by it;
otherwise as the current user. seed.py writes the profile (account,
password, the server's certificate in Gajim's trust store), so Gajim
connects on start without a click.

Protocol, for the Go test that drives it (e2e/matrix_test.go):
  stdout  READY display=:N home=DIR   Xvfb and Gajim started (not yet online:
                                      the test watches the server for that)
  stdin   shot NAME                   screenshot of the whole display
                                      (ImageMagick import -window root) into
                                      --artifacts/NAME.png
  stdout  SHOT PATH
  stdin   quit (or end of input)      stop Gajim and Xvfb
  stdout  RESULT ok ... | RESULT fail REASON

Gajim's own log (--verbose: every stanza) goes to --artifacts/gajim.log,
Xvfb's to --artifacts/xvfb.log. Everything ends after --timeout seconds.
Run with /usr/bin/python3.
"""

import argparse
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Timeout(Exception):
    pass


def on_alarm(_sig, _frame):
    raise Timeout()


def log(msg):
    print(f'run.py: {msg}', file=sys.stderr, flush=True)


def ensure_user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    log(f'creating user {name}')
    subprocess.run(['useradd', '--system', '--create-home', '--home-dir', f'/var/lib/{name}',
                    '--shell', '/usr/sbin/nologin', name], check=True, timeout=30)
    return pwd.getpwnam(name)


def start_xvfb(artifacts, size):
    r, w = os.pipe()
    out = open(os.path.join(artifacts, 'xvfb.log'), 'wb')
    proc = subprocess.Popen(['Xvfb', '-displayfd', str(w), '-screen', '0', size, '-nolisten', 'tcp', '-noreset'],
                            pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                            start_new_session=True)
    os.close(w)
    buf = b''
    deadline = time.monotonic() + 30
    while not buf.endswith(b'\n'):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 64)
            if not chunk:
                break
            buf += chunk
    os.close(r)
    if not buf.strip().isdigit():
        stop(proc)
        raise RuntimeError(f'Xvfb did not report a display (exit {proc.poll()}); see xvfb.log')
    return proc, ':' + buf.strip().decode()


def stop(proc, grace=5.0):
    """Ends the process group proc leads: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--jid', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--direct-tls', action='store_true')
    p.add_argument('--resource', default='gajim')
    p.add_argument('--ca', required=True)
    p.add_argument('--artifacts', required=True, help='directory for logs and screenshots')
    p.add_argument('--user', default='imppdgui', help='unprivileged user for Gajim when run as root')
    p.add_argument('--screen', default='1280x800x24')
    p.add_argument('--timeout', type=int, default=180)
    p.add_argument('--keep-home', action='store_true')
    a = p.parse_args()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(a.timeout)
    os.makedirs(a.artifacts, exist_ok=True)
    xvfb = gajim = None
    home = None
    shots = 0
    try:
        ids = {}
        if os.geteuid() == 0:
            pw = ensure_user(a.user)
            ids = {'user': pw.pw_uid, 'group': pw.pw_gid, 'extra_groups': []}
            username = pw.pw_name
        else:
            username = pwd.getpwuid(os.geteuid()).pw_name
        home = tempfile.mkdtemp(prefix='imppd-gajim-')
        os.chmod(home, 0o700)
        if ids:
            os.chown(home, ids['user'], ids['group'])
            os.chmod(a.artifacts, 0o755)
        env = {
            'HOME': home, 'USER': username, 'LOGNAME': username,
            'PATH': '/usr/local/bin:/usr/bin:/bin',
            'LANG': 'C.UTF-8',
            'XDG_CONFIG_HOME': os.path.join(home, '.config'),
            'XDG_DATA_HOME': os.path.join(home, '.local', 'share'),
            'XDG_CACHE_HOME': os.path.join(home, '.cache'),
            'NO_AT_BRIDGE': '1',  # no accessibility bus
            'GDK_BACKEND': 'x11',
        }
        # The server's data directory is private: hand Gajim's user a copy.
        ca = os.path.join(home, 'imppd-ca.pem')
        shutil.copyfile(a.ca, ca)
        if ids:
            os.chown(ca, ids['user'], ids['group'])
        seed = [sys.executable, os.path.join(HERE, 'seed.py'), '--home', home, '--jid', a.jid,
                '--password', a.password, '--host', a.host, '--port', str(a.port),
                '--resource', a.resource, '--ca', ca]
        if a.direct_tls:
            seed.append('--direct-tls')
        out = subprocess.run(seed, env=env, cwd=home, capture_output=True, text=True, timeout=60, **ids)
        if out.returncode != 0:
            print(f'RESULT fail seeding the profile: {out.stdout.strip()} {out.stderr.strip()}', flush=True)
            return 1
        log(out.stdout.strip())

        xvfb, display = start_xvfb(a.artifacts, a.screen)
        env['DISPLAY'] = display
        glog = open(os.path.join(a.artifacts, 'gajim.log'), 'wb')
        # dbus-run-session: Gajim is a GtkApplication and wants a session
        # bus; this one lives and dies with it.
        gajim = subprocess.Popen(['dbus-run-session', '--', 'gajim', '--verbose'], env=env, cwd=home,
                                 stdin=subprocess.DEVNULL, stdout=glog, stderr=glog,
                                 start_new_session=True, **ids)
        print(f'READY display={display} home={home}', flush=True)

        while True:
            if gajim.poll() is not None:
                print(f'RESULT fail gajim exited with status {gajim.returncode} (see gajim.log)', flush=True)
                return 1
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line or line.strip() == 'quit':
                break
            cmd, _, arg = line.strip().partition(' ')
            if cmd == 'shot':
                name = os.path.basename(arg) or f'shot{shots}'
                path = os.path.join(a.artifacts, name + '.png')
                subprocess.run(['import', '-display', display, '-window', 'root', path],
                               check=True, timeout=60, capture_output=True)
                shots += 1
                print(f'SHOT {path}', flush=True)
            else:
                print(f'ERROR unknown command {cmd!r}', flush=True)
        print(f'RESULT ok display={display} shots={shots}', flush=True)
        return 0
    except Timeout:
        print(f'RESULT fail timed out after {a.timeout}s', flush=True)
        return 1
    except Exception as e:  # noqa: BLE001
        print(f'RESULT fail {type(e).__name__}: {e}', flush=True)
        return 1
    finally:
        signal.alarm(0)
        stop(gajim)
        stop(xvfb)
        if home and not a.keep_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
