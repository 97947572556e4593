#!/usr/bin/python3
"""Avatars both ways: XEP-0084 (slixmpp's xep_0084) and vCard (xep_0054, xep_0153).

A server doing XEP-0398 (urn:xmpp:pep-vcard-conversion:0 on the account)
keeps one avatar: the XEP-0084 one is the PHOTO of the account's vCard
and its hash goes into the account's presence (XEP-0398 §4, XEP-0153's
<x xmlns='vcard-temp:x:update'><photo/></x>); a PHOTO set in a vCard is
published as XEP-0084 data and metadata.

The images are small PNGs written here (zlib and struct, random pixels,
so every run has its own); an avatar's id is the SHA-1 of its bytes.

Accounts: alice (xep_0084) is the mutual contact of bob (xep_0054,
xep_0153 and xep_0084, with +notify for urn:xmpp:avatar:metadata) and of
carol (xep_0054). bob and carol are strangers.

--phase set (or all):
- alice publishes an avatar with xep_0084 publish_avatar (node
  urn:xmpp:avatar:data, item id = SHA-1) and publish_avatar_metadata
  (id, type image/png, bytes, width, height);
- bob reads alice's vCard with xep_0054 get_vcard: PHOTO/BINVAL is the
  image and PHOTO/TYPE image/png; he reads the image with xep_0084
  retrieve_avatar too, and should have been notified of the metadata;
- alice's next presence reaches bob with <photo>SHA-1</photo> (xep_0153
  raises vcard_avatar_update for it);
- carol sets a vCard with FN and a PHOTO (TYPE image/png, BINVAL) with
  xep_0054 publish_vcard; alice reads carol's urn:xmpp:avatar:metadata
  (get_items: one item, id = SHA-1, <info/> with id, bytes, type
  image/png) and urn:xmpp:avatar:data (retrieve_avatar: the same bytes);
- carol reads her nodes' configuration: if access_model is open, bob (a
  stranger) reads the metadata too; carol's own vCard still has the photo
  and her next presence carries its hash.

--phase after-restart (the images from data.state, handed back as
expect.state): a new bob session reads alice's vCard photo and sees the
hash in the presence of a new alice session; a new alice session reads
carol's avatar through XEP-0084.
"""

import base64
import functools
import hashlib
import os
import struct
import zlib

from slixmpp.exceptions import IqError

import pepcommon
from common import Failed, NS_CLIENT, call, el_str, mutual, q
from pepcommon import NS_EVENT, error_summary, node_config, pubsub_items, require_account_feature, run_phases, sent

NS_UPDATE = 'vcard-temp:x:update'
NS_AV_DATA = 'urn:xmpp:avatar:data'
NS_AV_META = 'urn:xmpp:avatar:metadata'
NS_CONVERSION = 'urn:xmpp:pep-vcard-conversion:0'

XEP_0398 = 'XEP-0398 §3 (conversion)'


# -- images


def png(width, height):
    """A valid RGB PNG of random pixels, without PIL."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    rows = b''.join(b'\x00' + os.urandom(3 * width) for _ in range(height))
    return (b'\x89PNG\r\n\x1a\n'
            + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows))
            + chunk(b'IEND', b''))


def image(width, height):
    data = png(width, height)
    return {'b64': base64.b64encode(data).decode(), 'sha1': hashlib.sha1(data).hexdigest(),
            'bytes': len(data), 'width': width, 'height': height}


def raw(img):
    return base64.b64decode(img['b64'])


# -- clients

# Every client here advertises XEP-0115 caps, with or without interests.
login = functools.partial(pepcommon.login, caps=True)


# -- reading


async def vcard_photo(c, owner, t):
    """owner's vCard read with xep_0054 get_vcard: (photo bytes, TYPE, the
    answer, error, request)."""
    res, err = await call('vCard of %s' % owner, c.x['xep_0054'].get_vcard(owner, cached=False, timeout=t), t)
    req = sent(c, res, err)
    if res is None:
        return None, None, None, err, req
    photo = res['vcard_temp']['PHOTO']
    return photo['BINVAL'], photo['TYPE'], res, None, req


async def metadata(c, owner, t):
    """owner's urn:xmpp:avatar:metadata with xep_0060 get_items: ([{id,
    infos: [attributes]}], error, request)."""
    res, err = await call('avatar metadata of %s' % owner, c.x['xep_0060'].get_items(owner, NS_AV_META, timeout=t), t)
    req = sent(c, res, err)
    if res is None:
        return None, err, req
    out = []
    for it in pubsub_items(res):
        md = it.find(q(NS_AV_META, 'metadata'))
        infos = [] if md is None else [dict(i.attrib) for i in md.findall(q(NS_AV_META, 'info'))]
        out.append({'id': it.get('id'), 'infos': infos, 'xml': el_str(it)})
    return out, None, req


async def avatar_data(c, owner, sha, t):
    """The image of item sha of owner's urn:xmpp:avatar:data, read with
    xep_0084 retrieve_avatar: (bytes, error, request)."""
    res, err = await call('avatar data of %s' % owner, c.x['xep_0084'].retrieve_avatar(owner, sha, timeout=t), t)
    req = sent(c, res, err)
    if res is None:
        return None, err, req
    return res['pubsub']['items']['item']['avatar_data']['value'], None, req


def update_photo(pres):
    """The <photo/> text of a presence's vcard-temp:x:update (None: no
    <photo/>)."""
    p = pres.find('%s/%s' % (q(NS_UPDATE, 'x'), q(NS_UPDATE, 'photo')))
    return None if p is None else (p.text or '').strip()


def show_presence(frm, show):
    def p(el):
        if el.tag != q(NS_CLIENT, 'presence') or el.get('type') not in (None, 'available'):
            return False
        s = el.find(q(NS_CLIENT, 'show'))
        return (el.get('from') or '') == frm and s is not None and s.text == show
    return p


def check_vcard(rep, who, whose, img, got, typ, res, err, req, when=''):
    want = raw(img)
    observed = {'BINVAL sha1': hashlib.sha1(got).hexdigest() if got else None, 'TYPE': typ,
                'answer': el_str(res) if res is not None else error_summary(err)}
    if rep.must('%s%s reads %s vCard with get_vcard: PHOTO/BINVAL is the image' % (when, who, whose),
                got == want, XEP_0398 + ', XEP-0054 §3.3', {'BINVAL sha1': img['sha1']}, observed, req):
        rep.must('%s%s reads %s vCard: PHOTO/TYPE image/png' % (when, who, whose), typ == 'image/png',
                 XEP_0398 + ', XEP-0153 §4.6', 'image/png', observed, req)


def check_metadata(rep, who, whose, img, its, err, req, when=''):
    observed = its if its is not None else error_summary(err)
    ok = its is not None and len(its) == 1 and its[0]['id'] == img['sha1']
    if rep.must('%s%s reads %s urn:xmpp:avatar:metadata: one item, id = SHA-1' % (when, who, whose), ok,
                'XEP-0084 §4.2 (item id = SHA-1 of the image), ' + XEP_0398, img['sha1'], observed, req):
        infos = its[0]['infos']
        info = infos[0] if infos else {}
        rep.must('%s%s sees in %s <info/>: id, bytes and type image/png' % (when, who, whose),
                 len(infos) == 1 and info.get('id') == img['sha1'] and info.get('bytes') == str(img['bytes'])
                 and info.get('type') == 'image/png', 'XEP-0084 §4.2.1 (info: bytes, id, type REQUIRED)',
                 {'id': img['sha1'], 'bytes': str(img['bytes']), 'type': 'image/png'}, infos, req)
        rep.should('%s%s sees in %s <info/>: width and height' % (when, who, whose),
                   info.get('width') == str(img['width']) and info.get('height') == str(img['height']),
                   'XEP-0084 §4.2.1 (width, height RECOMMENDED)',
                   {'width': str(img['width']), 'height': str(img['height'])}, info)


def check_data(rep, who, whose, img, got, err, req, when=''):
    rep.must('%s%s reads %s urn:xmpp:avatar:data item with retrieve_avatar: the same bytes' % (when, who, whose),
             got == raw(img), 'XEP-0084 §4.1, ' + XEP_0398, {'sha1': img['sha1']},
             {'sha1': hashlib.sha1(got).hexdigest()} if got is not None else error_summary(err), req)


async def presence_hash(rep, sender, receiver, img, show, what, xep, level='must'):
    """sender sends presence with show; receiver gets it with img's hash."""
    m = receiver.mark()
    e = receiver.emark('vcard_avatar_update') if 'vcard_avatar_update' in receiver.events else None
    sender.send_presence(show=show)
    pres = await receiver.try_wait_for(show_presence(sender.full, show), "%s's presence" % sender.label, m)
    got = None if pres is None else update_photo(pres)
    rep.data.setdefault('presences', {})[what] = el_str(pres)
    rep.check(level, what, got == img['sha1'], xep, "<x xmlns='%s'><photo>%s</photo></x>" % (NS_UPDATE, img['sha1']),
              el_str(pres) if pres is not None else [el_str(s) for s in receiver.stanzas[m:]])
    if e is not None and pres is not None:
        ev = await receiver.try_wait_event('vcard_avatar_update',
                                           lambda p: str(p['from']) == sender.full, 'vcard_avatar_update', e)
        rep.must("%s's xep_0153 raises vcard_avatar_update with the hash" % receiver.label,
                 ev is not None and ev['vcard_temp_update']['photo'] == img['sha1'], 'XEP-0153 §3.2',
                 img['sha1'], str(ev) if ev is not None else None)


# -- the phases


async def set_phase(cfg, rep, n):
    t = cfg.timeout
    st = {'alice': image(4, 3), 'carol': image(5, 2)}
    ai, ci = st['alice'], st['carol']

    alice = await login(cfg, 'alice', 'avatar-' + n, ('xep_0084',))
    bob = await login(cfg, 'bob', 'contact-' + n, ('xep_0054', 'xep_0153', 'xep_0084'), interests=(NS_AV_META,))
    carol = await login(cfg, 'carol', 'vcard-' + n, ('xep_0054',))
    await require_account_feature(rep, alice, t, NS_CONVERSION, 'XEP-0398 §2')
    await mutual(alice, bob)
    await mutual(alice, carol)
    bob.track('vcard_avatar_update', 'avatar_metadata_publish')
    mb = bob.mark()

    # 1. XEP-0084 → vCard
    res, err = await call('publish_avatar', alice.x['xep_0084'].publish_avatar(raw(ai), timeout=t), t)
    req = sent(alice, res, err)
    if not rep.must('alice publishes her avatar with xep_0084 publish_avatar (data, id = SHA-1)', res is not None,
                    'XEP-0084 §4.1', 'type=result', error_summary(err) if err is not None else None, req):
        raise Failed('publish_avatar failed: %s' % el_str(err))
    # slixmpp 1.8.3's Info sets width and height as given, and an int
    # attribute breaks the serialisation of the stanza (TypeError in the
    # send queue, nothing sent): they are passed as text.
    meta = {'id': ai['sha1'], 'type': 'image/png', 'bytes': ai['bytes'],
            'width': str(ai['width']), 'height': str(ai['height'])}
    res, err = await call('publish_avatar_metadata', alice.x['xep_0084'].publish_avatar_metadata(meta, timeout=t), t)
    req = sent(alice, res, err)
    if not rep.must('alice publishes its metadata with publish_avatar_metadata', res is not None, 'XEP-0084 §4.2',
                    'type=result', error_summary(err) if err is not None else None, req):
        raise Failed('publish_avatar_metadata failed: %s' % el_str(err))
    got, typ, res, err, req = await vcard_photo(bob, alice.bare, t)
    rep.data['alice_vcard_for_bob'] = el_str(res) if res is not None else error_summary(err)
    check_vcard(rep, 'bob (contact)', "alice's", ai, got, typ, res, err, req)
    got, err, req = await avatar_data(bob, alice.bare, ai['sha1'], t)
    check_data(rep, 'bob', "alice's", ai, got, err, req)
    ev = await bob.try_wait_event('avatar_metadata_publish', lambda m: True, 'the metadata notification', 0)
    rep.should('bob (contact, +notify) was notified of the metadata (slixmpp avatar_metadata_publish)',
               ev is not None and ev['pubsub_event']['items']['item']['id'] == ai['sha1'],
               'XEP-0084 §4.3, XEP-0163 §4.3', ai['sha1'], str(ev) if ev is not None else
               [el_str(e) for e in bob.stanzas[mb:] if e.find(q(NS_EVENT, 'event')) is not None])
    await presence_hash(rep, alice, bob, ai, 'chat', "alice's next presence reaches bob with the avatar's hash",
                        'XEP-0398 §4, XEP-0153 §4.1')

    # 2. vCard → XEP-0084
    vc = carol.x['xep_0054'].make_vcard()
    vc['FN'] = 'Carol ' + n
    vc['PHOTO']['TYPE'] = 'image/png'
    vc['PHOTO']['BINVAL'] = raw(ci)
    m = len(carol.sent_xml)
    try:
        await carol.x['xep_0054'].publish_vcard(vcard=vc, timeout=t)
        err = None
    except IqError as e:
        err = e.iq
    except Exception as e:  # noqa: BLE001 - IqTimeout
        raise Failed('publish_vcard: %r' % e)
    req = list(carol.sent_xml.values())[m] if len(carol.sent_xml) > m else None
    if not rep.must('carol sets a vCard with FN and PHOTO (TYPE, BINVAL) with xep_0054 publish_vcard', err is None,
                    'XEP-0054 §3.2', 'type=result', error_summary(err) if err is not None else None,
                    req[:600] if req else None):
        raise Failed('publish_vcard failed: %s' % el_str(err))
    its, err, req = await metadata(alice, carol.bare, t)
    rep.data['carol_metadata_for_alice'] = its if its is not None else error_summary(err)
    check_metadata(rep, 'alice (contact)', "carol's", ci, its, err, req)
    got, err, req = await avatar_data(alice, carol.bare, ci['sha1'], t)
    check_data(rep, 'alice', "carol's", ci, got, err, req)

    # 3. how the server configured the nodes it created
    access = {}
    for node in (NS_AV_META, NS_AV_DATA):
        vals, err = await node_config(carol, node, t)
        if vals is None:
            access[node] = error_summary(err)
        else:
            a = vals.get('pubsub#access_model', '')
            access[node] = a if isinstance(a, str) else (a or [''])[0]
    rep.data['vcard_node_access'] = access
    rep.info('access models of the avatar nodes made from carol\'s vCard', access)
    its, err, req = await metadata(bob, carol.bare, t)
    if all(a == 'open' for a in access.values()):
        check_metadata(rep, 'bob (stranger; the nodes are open)', "carol's", ci, its, err, req)
    else:
        rep.info("bob (stranger) reading carol's metadata (nodes not open)", its if its is not None
                 else error_summary(err))

    # 4. carol's own view
    got, typ, res, err, req = await vcard_photo(carol, carol.bare, t)
    check_vcard(rep, 'carol', 'her own', ci, got, typ, res, err, req)
    await presence_hash(rep, carol, alice, ci, 'away', "carol's next presence reaches alice with her avatar's hash",
                        'XEP-0398 §4, XEP-0153 §4.1', level='should')
    return st


async def restart_phase(cfg, rep, n, st):
    t = cfg.timeout
    if not st or 'alice' not in st or 'carol' not in st:
        raise Failed('no state from the set phase (expect.state)')
    ai, ci = st['alice'], st['carol']
    bob = await login(cfg, 'bob', 'contact2-' + n, ('xep_0054', 'xep_0153', 'xep_0084'))
    bob.track('vcard_avatar_update')
    got, typ, res, err, req = await vcard_photo(bob, cfg.jid('alice'), t)
    check_vcard(rep, 'bob', "alice's", ai, got, typ, res, err, req, 'after the restart ')
    alice = await login(cfg, 'alice', 'avatar2-' + n, ('xep_0084',))
    await presence_hash(rep, alice, bob, ai, 'dnd', "after the restart a new alice session's presence reaches bob "
                        "with the avatar's hash", 'XEP-0398 §4, XEP-0153 §4.1')
    its, err, req = await metadata(alice, cfg.jid('carol'), t)
    check_metadata(rep, 'alice', "carol's", ci, its, err, req, 'after the restart ')
    got, err, req = await avatar_data(alice, cfg.jid('carol'), ci['sha1'], t)
    check_data(rep, 'alice', "carol's", ci, got, err, req, 'after the restart ')


if __name__ == '__main__':
    run_phases('avatars', __doc__, 'set', set_phase, restart_phase)
