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
  stdin   open URI                    hand an xmpp: URI to the running Gajim
                                      (a second "gajim URI", as a desktop
                                      would: xmpp:bob@example.org opens
                                      the chat with Bob)
  stdout  OPENED URI
  stdin   shot NAME                   screenshot of the whole display
                                      (ImageMagick import -window root) into
                                      --artifacts/NAME.png, once the screen
                                      has stopped changing (polled, at most
                                      --settle seconds)
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


class Terminated(Exception):
    pass


def on_alarm(_sig, _frame):
    raise Timeout()


def on_term(_sig, _frame):
    raise Terminated()


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


def start_bus(env, ids):
    """A D-Bus session bus for Gajim (a GtkApplication: a second "gajim
    URI" finds the first one through it). Returns (process, address)."""
    proc = subprocess.Popen(['dbus-daemon', '--session', '--nofork', '--print-address=1'], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, **ids)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    addr = proc.stdout.readline().decode().strip() if ready else ''
    if not addr:
        stop(proc)
        raise RuntimeError('dbus-daemon printed no address')
    return proc, addr


def grab(display, path):
    subprocess.run(['import', '-display', display, '-window', 'root', path],
                   check=True, timeout=60, capture_output=True)


def settled_shot(display, path, settle):
    """Polls raw captures of the screen until two in a row are identical
    (the window has finished drawing), at most settle seconds, then
    writes the PNG. Returns whether the screen settled."""
    raw = path + '.rgb'
    previous = None
    deadline = time.monotonic() + settle
    settled = False
    while time.monotonic() < deadline:
        grab(display, 'rgb:' + raw)
        with open(raw, 'rb') as f:
            frame = f.read()
        if frame == previous:
            settled = True
            break
        previous = frame
        time.sleep(0.3)  # polling interval of the screen, not a synchronisation
    os.unlink(raw)
    grab(display, path)
    return settled


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
    p.add_argument('--settle', type=float, default=15, help='seconds to wait for a still screen before a shot')
    p.add_argument('--keep-home', action='store_true')
    a = p.parse_args()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(a.timeout)
    os.makedirs(a.artifacts, exist_ok=True)
    xvfb = gajim = bus = None
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
        home = tempfile.mkdtemp(prefix='imppd-gajim-', dir='/tmp')  # reachable by --user
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
        bus, env['DBUS_SESSION_BUS_ADDRESS'] = start_bus(env, ids)
        glog = open(os.path.join(a.artifacts, 'gajim.log'), 'wb')
        gajim = subprocess.Popen(['gajim', '--verbose'], env=env, cwd=home,
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
                if not settled_shot(display, path, a.settle):
                    log(f'{name}: the screen was still changing after {a.settle}s')
                shots += 1
                print(f'SHOT {path}', flush=True)
            elif cmd == 'open':
                out = subprocess.run(['gajim', arg], env=env, cwd=home, capture_output=True,
                                     timeout=60, **ids)
                if out.returncode != 0:
                    print(f'RESULT fail gajim {arg}: exit {out.returncode}: {out.stderr.decode()[-500:]}', flush=True)
                    return 1
                print(f'OPENED {arg}', flush=True)
            else:
                print(f'ERROR unknown command {cmd!r}', flush=True)
        print(f'RESULT ok display={display} shots={shots}', flush=True)
        return 0
    except Timeout:
        print(f'RESULT fail timed out after {a.timeout}s', flush=True)
        return 1
    except Terminated:
        print('RESULT fail terminated (SIGTERM)', flush=True)
        return 1
    except Exception as e:  # noqa: BLE001
        print(f'RESULT fail {type(e).__name__}: {e}', flush=True)
        return 1
    finally:
        signal.alarm(0)
        stop(gajim)
        stop(bus)
        stop(xvfb)
        if home and not a.keep_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
