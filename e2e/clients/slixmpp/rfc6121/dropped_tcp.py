#!/usr/bin/python3
"""Scenario 5: a dropped TCP connection makes the resource unavailable.

alice subscribes to bob and bob approves. bob then logs in again from a
separate process (this script run with --child), becomes available and is
killed with SIGKILL: the kernel closes the socket, no </stream:stream> and
no TLS close_notify are sent. alice, bob's subscriber, must see that
resource go unavailable (RFC 6121 4.5.3 / RFC 6120 4.4: the server treats
the resource as unavailable when the stream ends without a closing tag).
"""

import asyncio
import ctypes
import json
import os
import signal
import sys
import time

from common import Client, Failed, is_presence, main, nonce, presence_summary, reset_relations


def die_with_parent():
    """Linux: be killed if the parent dies (PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - best effort
        pass


async def child(cfg, rep, args):
    die_with_parent()
    bob = await Client(cfg, cfg.user('bob'), args.child).connect(
        roster=True, presence={'status': 'about to be dropped'})
    await bob.barrier()
    sys.stdout.write('READY %s\n' % bob.full)
    sys.stdout.flush()
    await asyncio.Future()  # until killed


async def body(cfg, rep, args):
    if args.child:
        return await child(cfg, rep, args)
    n = nonce()
    alice = await Client(cfg, cfg.user('alice'), 'watch-' + n).connect(roster=True, presence={})
    bob = await Client(cfg, cfg.user('bob'), 'setup-' + n).connect(roster=True, presence={})
    await reset_relations(alice, bob)
    m, mb = alice.mark(), bob.mark()
    alice.send_presence(to=bob.bare, type='subscribe')
    if await bob.try_wait_for(is_presence('subscribe', frm=alice.bare), 'request', mb) is None:
        raise Failed('bob got no subscription request from alice')
    bob.send_presence(to=alice.bare, type='subscribed')
    if await alice.try_wait_for(is_presence('subscribed', frm=bob.bare), 'approval', m) is None:
        raise Failed('alice got no approval from bob')
    await bob.close()

    resource = 'dropped-' + n
    env = dict(os.environ, RFC6121_CONFIG=json.dumps(cfg.raw))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), '--child', resource,
        stdout=asyncio.subprocess.PIPE, env=env)
    try:
        m = alice.mark()
        line = await asyncio.wait_for(proc.stdout.readline(), cfg.timeout * 2)
        text = line.decode().strip()
        if not text.startswith('READY '):
            raise Failed('the bob process did not get ready: %r' % text)
        full = text.split(' ', 1)[1]
        avail = await alice.try_wait_for(is_presence(None, full=full), 'available presence of ' + full, m)
        rep.must('alice sees bob\'s second resource available', avail is not None,
                 'RFC 6121 4.2.2', full, None)
        m = alice.mark()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), cfg.timeout)
        gone = await alice.try_wait_for(is_presence('unavailable', full=full), 'unavailable from ' + full, m)
        rep.data['seconds_to_unavailable'] = round(time.monotonic() - t0, 3) if gone is not None else None
        rep.must('alice sees bob\'s resource unavailable after its TCP connection dropped (process killed)',
                 gone is not None, 'RFC 6121 4.5.3, RFC 6120 4.4 (stream ended without </stream:stream>)',
                 "<presence type='unavailable' from='%s'/> within %.0fs" % (full, cfg.timeout),
                 [presence_summary(e) for e in alice.stanzas[m:] if e.tag.endswith('presence')],
                 'SIGKILL of the client process holding %s' % full)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await alice.close()


def add_args(p):
    p.add_argument('--child', metavar='RESOURCE', help='internal: be the bob process that gets killed')


if __name__ == '__main__':
    main('dropped-tcp', body, add_args)
