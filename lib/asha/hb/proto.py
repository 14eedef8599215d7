"""asha-hb's messages: authenticated, numbered, and checked before anything acts on them.

A message is a small binary record (magic, version, type, node name, the
sender's generation = its start time in ns, a sequence number, text fields)
followed by an HMAC-SHA256 of all of it, truncated to 128 bits. A receiver
drops and counts anything that is short, malformed, forged, altered, from
another node, from an older generation, or already seen; it keeps one replay
window per path, so one message sent on every path is accepted once on each."""

import collections
import errno
import hashlib
import hmac
import os
import stat
import struct
import tempfile
import time
from dataclasses import dataclass, field

from .. import exits

MAGIC = b"AH"
VERSION = 1
MAC_LEN = 16                     # HMAC-SHA256 truncated to 128 bits (RFC 4868 does the same)
MAX_LEN = 512
WINDOW = 128                     # sequence numbers remembered per path (reordering tolerated)
_HEAD = struct.Struct("!2sBBQQB")   # magic, version, type, gen, seq, node length
_FLEN = struct.Struct("!H")          # length of the fields

TYPES = {"beat": 1, "bye": 2}
_TYPE_NAMES = {v: k for k, v in TYPES.items()}
_BLOCK = 64                      # SHA-256's block size: HMAC pads the key to it (RFC 2104)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class Rejected(Exception):
    """A message that is not acted on; .reason says why (one word)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Message:
    type: str
    node: str
    gen: int
    seq: int
    fields: dict = field(default_factory=dict)   # shared by messages with the same fields: read only
    path: str = None


def load_key(path):
    """The shared key in path: refuses a missing, empty or group/world-accessible file."""
    try:
        # O_NONBLOCK: a FIFO put in its place would otherwise block the open
        # for ever; on the regular file it must be, it changes nothing.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise exits.AshaError(f"{path}: heartbeat key (HBAUTHKEY) missing; make one with "
                              f"`asha-hb genkey` and copy it to both nodes", exits.CONFIG) from None
    except OSError as e:
        if e.errno == errno.ELOOP:          # O_NOFOLLOW met a symbolic link
            raise exits.AshaError(f"{path}: heartbeat key is a symbolic link; set HBAUTHKEY "
                                  f"to the file itself", exits.CONFIG) from None
        raise exits.AshaError(f"{path}: cannot read the heartbeat key: {e.strerror}",
                              exits.CONFIG) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise exits.AshaError(f"{path}: heartbeat key is not a regular file", exits.CONFIG)
        if st.st_mode & 0o077:
            raise exits.AshaError(f"{path}: heartbeat key must be mode 0600, not "
                                  f"{stat.S_IMODE(st.st_mode):04o} (others can read or write it)",
                                  exits.CONFIG)
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    text = data.strip()
    if not text:
        raise exits.AshaError(f"{path}: heartbeat key is empty", exits.CONFIG)
    if len(text) < 16:
        raise exits.AshaError(f"{path}: heartbeat key too short ({len(text)} bytes, "
                              f"at least 16)", exits.CONFIG)
    return text


def make_key(path):
    """Write a new random key (64 hex digits and a newline), mode 0600, atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".authkey.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class _Window:
    """Anti-replay window over sequence numbers (as IPsec's): the highest seen
    and a bitmap of the WINDOW below it."""
    __slots__ = ("gen", "top", "bits")

    def __init__(self, gen, seq):
        self.gen, self.top, self.bits = gen, seq, 1

    def check(self, seq):
        if seq > self.top:
            return True
        d = self.top - seq
        return d < WINDOW and not (self.bits >> d) & 1

    def mark(self, seq):
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


class Codec:
    """Encodes this node's messages and checks the peer's."""

    def __init__(self, key, node, peer, gen=None):
        self.key = key
        # HMAC-SHA256 as RFC 2104 defines it, with the inner and outer hashes of
        # the padded key made once: a message costs two copies and three hash
        # calls, not a new HMAC object (the beat is sent and checked 17 times a
        # second on every path). Checked against hmac.new here, for this key.
        k = hashlib.sha256(key).digest() if len(key) > _BLOCK else bytes(key)
        k = k.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(k.translate(_IPAD))
        self._outer = hashlib.sha256(k.translate(_OPAD))
        if self._mac(b"asha") != hmac.new(key, b"asha", hashlib.sha256).digest()[:MAC_LEN]:
            raise RuntimeError("HMAC-SHA256 from prepared pads differs from hmac.new")
        self.node, self.peer = node, peer
        self._node_b, self._peer_b = node.encode(), peer.encode()
        self.gen = time.time_ns() if gen is None else gen
        self.seq = 0
        self.windows = {}
        self.peer_gen = None
        self.counters = collections.Counter()
        self._sent = self._tail = None       # the fields last encoded, and what follows the sequence number
        self._got = self._got_fields = None  # the field text last decoded, and its dict
        self._last = self._last_parts = None  # the last authentic message, and its parts

    def _mac(self, data):
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_LEN]

    def encode(self, type, **fields):
        return self.encode_fields(type, tuple(fields.items()))

    def encode_fields(self, type, items):
        """encode() with the fields as a tuple of (name, value) pairs. What
        follows the sequence number is kept from the last call with the same
        type and fields: a node beats the same ones for hours."""
        if (type, items) != self._sent:
            body = ";".join(f"{k}={v}" for k, v in items).encode()
            if _HEAD.size + len(self._node_b) + 2 + len(body) + MAC_LEN > MAX_LEN:
                raise ValueError("message too long")
            self._sent = (type, items)
            self._tail = self._node_b + _FLEN.pack(len(body)) + body
        self.seq += 1
        data = _HEAD.pack(MAGIC, VERSION, TYPES[type], self.gen, self.seq, len(self._node_b)) + self._tail
        return data + self._mac(data)

    def decode(self, data, path=None):
        try:
            msg = self._decode(data, path)
        except Rejected as r:
            self.counters[r.reason] += 1
            raise
        self.counters["accepted"] += 1
        return msg

    def _decode(self, data, path):
        if not isinstance(data, (bytes, bytearray)) or len(data) < _HEAD.size + 2 + MAC_LEN:
            raise Rejected("short")
        if len(data) > MAX_LEN:
            raise Rejected("malformed")
        if data[:2] != MAGIC:
            raise Rejected("magic")
        if data[2] != VERSION:
            raise Rejected("version")
        if data == self._last:
            # The copy of a message just authenticated on another path: the same
            # bytes carry the same MAC, so checking it again proves nothing new.
            # The replay window below is still this path's own.
            mtype, gen, seq, fields = self._last_parts
        else:
            mtype, gen, seq, fields = self._authentic(data)
            self._last, self._last_parts = bytes(data), (mtype, gen, seq, fields)
        w = self.windows.get(path)
        if w is None or gen > w.gen:
            if self.peer_gen is not None and gen < self.peer_gen:
                raise Rejected("stale-generation")
            w = self.windows[path] = _Window(gen, seq)
        elif gen < w.gen:
            raise Rejected("stale-generation")
        elif not w.check(seq):
            raise Rejected("replay")
        else:
            w.mark(seq)
        if self.peer_gen is None or gen > self.peer_gen:
            self.peer_gen = gen
        return Message(_TYPE_NAMES[mtype], self.peer, gen, seq, fields, path)

    def _authentic(self, data):
        """(type, generation, sequence, fields) of a message whose MAC is right
        and that the peer sent; Rejected otherwise."""
        body, mac = bytes(data[:-MAC_LEN]), bytes(data[-MAC_LEN:])
        if not hmac.compare_digest(self._mac(body), mac):
            raise Rejected("mac")
        # Authentic from here on: whatever is wrong now is a bug or a replay, not noise.
        _, _, mtype, gen, seq, nlen = _HEAD.unpack_from(body)
        off = _HEAD.size
        node = body[off:off + nlen]
        off += nlen
        if len(body) < off + 2:
            raise Rejected("malformed")
        (flen,) = _FLEN.unpack_from(body, off)
        off += 2
        if len(body) != off + flen or mtype not in _TYPE_NAMES:
            raise Rejected("malformed")
        if node == self._node_b:
            raise Rejected("own")
        if node != self._peer_b:
            raise Rejected("node")
        raw = body[off:]
        if raw == self._got:
            fields = self._got_fields          # the peer's fields change seldom: parsed once
        else:
            try:
                text = raw.decode()
                fields = dict(item.split("=", 1) for item in text.split(";")) if text else {}
            except ValueError:
                raise Rejected("malformed") from None
            self._got, self._got_fields = raw, fields
        return mtype, gen, seq, fields
