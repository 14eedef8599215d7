"""asha-hb's messages (asha.hb.proto): what goes in comes out, field by field,
and everything else is dropped under the right reason and counted, never
raised past the codec; the key file is refused when it cannot be trusted,
with one line that says why; genkey writes a key only root can read."""

import hashlib
import hmac
import os
import stat
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asha import exits
from asha.hb import proto
from asha.hb.proto import Codec, Rejected

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"
HEAD = struct.Struct("!2sBBQQB")
MIN_LEN = HEAD.size + 2 + proto.MAC_LEN


def pair(gen_a=1_000, gen_b=2_000):
    """(sender on pbx1, receiver on pbx2) sharing KEY."""
    return Codec(KEY, "pbx1", "pbx2", gen=gen_a), Codec(KEY, "pbx2", "pbx1", gen=gen_b)


def reason(codec, data, path="udp"):
    with pytest.raises(Rejected) as r:
        codec.decode(data, path)
    return r.value.reason


def signed(body, key=KEY):
    """body with a valid MAC: authentic bytes, whatever their layout."""
    return body + hmac.new(key, body, hashlib.sha256).digest()[:proto.MAC_LEN]


def raw_message(mtype=1, gen=5, seq=1, node=b"pbx1", fields=b"role=active", magic=b"AH",
                version=proto.VERSION, nlen=None, flen=None, key=KEY):
    body = HEAD.pack(magic, version, mtype, gen, seq, len(node) if nlen is None else nlen) + node \
        + struct.pack("!H", len(fields) if flen is None else flen) + fields
    return signed(body, key)


# ---------------------------------------------------------------- round trip

def test_round_trip_carries_every_field():
    a, b = pair(gen_a=1_732_000_000_123_456_789)
    data = a.encode("beat", role="active", since="1732000000.250000", yld=0, want=1, ping="-")
    msg = b.decode(data, "serial:/dev/ttyS0")
    assert msg.type == "beat"
    assert msg.node == "pbx1"
    assert msg.gen == 1_732_000_000_123_456_789
    assert msg.seq == 1
    assert msg.fields == {"role": "active", "since": "1732000000.250000", "yld": "0",
                          "want": "1", "ping": "-"}
    assert msg.path == "serial:/dev/ttyS0"
    assert b.counters == {"accepted": 1}


def test_bye_and_empty_fields_round_trip():
    a, b = pair()
    msg = b.decode(a.encode("bye"), "udp")
    assert (msg.type, msg.fields, msg.seq) == ("bye", {}, 1)


def test_sequence_numbers_count_up_from_one_per_codec():
    a, b = pair()
    seqs = [b.decode(a.encode("beat", role="standby"), "udp").seq for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert a.seq == 5


def test_a_field_value_may_hold_an_equals_sign():
    a, b = pair()
    assert b.decode(a.encode("beat", note="x=y"), "udp").fields == {"note": "x=y"}


def test_generation_defaults_to_the_start_time_in_ns():
    import time
    before = time.time_ns()
    c = Codec(KEY, "pbx1", "pbx2")
    assert before <= c.gen <= time.time_ns()


def test_encode_refuses_a_message_over_the_limit():
    a, _ = pair()
    with pytest.raises(ValueError, match="too long"):
        a.encode("beat", junk="x" * proto.MAX_LEN)


def test_messages_are_small():
    a, _ = pair()
    data = a.encode("beat", role="releasing", since="1732000000.250000", yld=1, want=0, ping=1)
    assert len(data) < 128          # at most 11 ms a beat on a serial line at 115200 baud


# ---------------------------------------------------------------- forged, altered, truncated

def test_wrong_key_is_mac():
    a = Codec(OTHER_KEY, "pbx1", "pbx2", gen=1)
    _, b = pair()
    assert reason(b, a.encode("beat", role="active")) == "mac"
    assert b.counters == {"mac": 1}
    assert b.peer_gen is None and b.windows == {}      # nothing learnt from it


def test_every_altered_byte_is_dropped_with_its_reason():
    a, b = pair()
    data = a.encode("beat", role="active", since="0.000000", yld=0, want=0, ping="-")
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            want = "magic" if i < 2 else "version" if i == 2 else "mac"
            assert reason(b, bytes(bad)) == want, (i, bit)
    assert b.counters["accepted"] == 0
    assert b.decode(data, "udp").seq == 1            # the rejects left no trace


def test_every_truncation_is_dropped():
    a, b = pair()
    data = a.encode("beat", role="active", since="0.000000", yld=0, want=0, ping="-")
    for n in range(len(data)):
        r = reason(b, data[:n])
        assert r == ("short" if n < MIN_LEN else "mac"), n
    assert b.counters["short"] == MIN_LEN
    assert b.counters["mac"] == len(data) - MIN_LEN


def test_a_byte_appended_is_mac():
    a, b = pair()
    assert reason(b, a.encode("beat", role="active") + b"\0") == "mac"


def test_oversized_is_malformed_even_when_signed():
    big = raw_message(fields=b"x=" + b"y" * proto.MAX_LEN)
    assert len(big) > proto.MAX_LEN
    _, b = pair()
    assert reason(b, big) == "malformed"


@pytest.mark.parametrize("data, why", [
    (b"", "short"),
    (b"AH", "short"),
    (b"\0" * (MIN_LEN - 1), "short"),
    (b"\0" * MIN_LEN, "magic"),
    (b"AH\x02" + b"\0" * MIN_LEN, "version"),
    (b"AH\x01" + b"\0" * MIN_LEN, "mac"),
    ("AH\x01 text, not bytes" * 4, "short"),
    (None, "short"),
])
def test_garbage(data, why):
    _, b = pair()
    assert reason(b, data) == why
    assert b.counters == {why: 1}


# ---------------------------------------------------------------- authentic but wrong

@pytest.mark.parametrize("kw, why", [
    ({"mtype": 9}, "malformed"),                      # unknown type
    ({"nlen": 200}, "malformed"),                     # node name longer than the message
    ({"flen": 3}, "malformed"),                       # fields length does not match
    ({"flen": 500}, "malformed"),
    ({"fields": b"role"}, "malformed"),               # a field without =
    ({"fields": b"role=\xff\xfe"}, "malformed"),      # not UTF-8
    ({"node": b"pbx2"}, "own"),                       # the receiver's own name
    ({"node": b"pbx3"}, "node"),                      # a third node that has the key
    ({"node": b""}, "node"),
])
def test_authentic_but_wrong(kw, why):
    _, b = pair()
    assert reason(b, raw_message(**kw)) == why
    assert b.counters == {why: 1}


def test_own_message_come_back_is_own():
    a, _ = pair()
    assert reason(a, a.encode("beat", role="active")) == "own"


# ---------------------------------------------------------------- replay and generations

def test_replay_on_the_same_path():
    a, b = pair()
    data = a.encode("beat", role="active")
    b.decode(data, "udp")
    assert reason(b, data, "udp") == "replay"
    assert reason(b, data, "udp") == "replay"
    assert b.counters == {"accepted": 1, "replay": 2}


def test_one_message_is_accepted_once_on_each_path():
    a, b = pair()
    data = a.encode("beat", role="active")
    b.decode(data, "udp:192.0.2.1")
    b.decode(data, "serial:/dev/ttyS0")
    assert reason(b, data, "serial:/dev/ttyS0") == "replay"
    assert reason(b, data, "udp:192.0.2.1") == "replay"


def test_the_copy_on_another_path_is_checked_only_where_it_differs(monkeypatch):
    a, b = pair()
    data = a.encode("beat", role="active")
    b.decode(data, "udp")
    macs = []
    real = b._mac
    monkeypatch.setattr(b, "_mac", lambda body: macs.append(body) or real(body))
    assert b.decode(data, "serial").seq == 1          # the same bytes: MAC not computed again
    assert macs == []
    for i in (len(data) - 1, 20):                     # the MAC, or the sequence number, altered
        bad = bytearray(data)
        bad[i] ^= 0x01
        assert reason(b, bytes(bad), "serial2") == "mac"
    assert len(macs) == 2
    assert b.decode(data, "serial2").seq == 1         # still the last authentic message
    assert reason(b, data, "serial") == "replay"      # each path keeps its own window


def test_reordering_within_the_window_is_accepted_once():
    a, b = pair()
    msgs = [a.encode("beat", role="active") for _ in range(5)]
    for i in (4, 0, 2, 1, 3):
        assert b.decode(msgs[i], "udp").seq == i + 1
    for m in msgs:
        assert reason(b, m) == "replay"


def test_window_edge():
    a, b = pair()
    msgs = [a.encode("beat", role="active") for _ in range(proto.WINDOW + 2)]
    b.decode(msgs[-1], "udp")                 # seq WINDOW + 2 is the newest
    assert reason(b, msgs[0]) == "replay"     # WINDOW + 1 below: outside, refused
    assert reason(b, msgs[1]) == "replay"     # exactly WINDOW below: outside
    assert b.decode(msgs[2], "udp").seq == 3  # WINDOW - 1 below: inside, accepted once
    assert reason(b, msgs[2]) == "replay"


def test_a_jump_past_the_window_forgets_the_old_ones():
    a, b = pair()
    first = a.encode("beat", role="active")
    b.decode(first, "udp")
    for _ in range(3 * proto.WINDOW):
        last = a.encode("beat", role="active")
    b.decode(last, "udp")
    assert reason(b, first) == "replay"
    assert b.decode(a.encode("beat"), "udp").seq == 3 * proto.WINDOW + 2


def test_old_generation_is_stale_on_every_path():
    old = Codec(KEY, "pbx1", "pbx2", gen=100)
    new = Codec(KEY, "pbx1", "pbx2", gen=200)
    _, b = pair()
    recorded = [old.encode("beat", role="active") for _ in range(3)]
    b.decode(recorded[0], "udp")
    b.decode(new.encode("beat", role="standby"), "udp")       # the peer restarted
    assert reason(b, recorded[1], "udp") == "stale-generation"
    # a path that has heard nothing yet must not take the old generation either
    assert reason(b, recorded[2], "serial:/dev/ttyS0") == "stale-generation"
    assert b.counters["stale-generation"] == 2


def test_a_restarted_peer_starts_again_from_sequence_one():
    first = Codec(KEY, "pbx1", "pbx2", gen=100)
    _, b = pair()
    for _ in range(50):
        b.decode(first.encode("beat"), "udp")
    again = Codec(KEY, "pbx1", "pbx2", gen=101)
    msg = b.decode(again.encode("beat", role="waiting"), "udp")
    assert (msg.gen, msg.seq) == (101, 1)
    assert b.peer_gen == 101


# ---------------------------------------------------------------- never raises

@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_decode_never_raises_on_random_bytes(data):
    _, b = pair()
    with pytest.raises(Rejected):
        b.decode(data, "udp")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_decode_never_raises_on_random_signed_bodies(tail):
    """Bytes past the MAC check, with a valid head or not: a verdict, never a crash."""
    _, b = pair()
    body = b"AH" + bytes([proto.VERSION]) + tail
    try:
        msg = b.decode(signed(body), "udp")
    except Rejected as r:
        assert r.reason in {"short", "malformed", "own", "node", "stale-generation", "replay"}
    else:
        assert msg.node == "pbx1" and msg.type in proto.TYPES


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                       st.from_regex(r"[A-Za-z0-9.=:-]{0,20}", fullmatch=True), max_size=6))
def test_round_trip_any_fields(fields):
    a, b = pair()
    assert b.decode(a.encode("beat", **fields), "udp").fields == fields


# ---------------------------------------------------------------- the key file

def write_key(path, text, mode=0o600):
    with open(path, "wb") as f:
        f.write(text)
    os.chmod(path, mode)
    return str(path)


def refused(path):
    with pytest.raises(exits.AshaError) as e:
        proto.load_key(path)
    assert e.value.status == exits.CONFIG
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_key_is_read_and_stripped(tmp_path):
    a = write_key(tmp_path / "a", b"  0123456789abcdef0123\r\n")
    b = write_key(tmp_path / "b", b"0123456789abcdef0123")
    assert proto.load_key(a) == proto.load_key(b) == b"0123456789abcdef0123"


def test_key_read_only_for_root_is_fine(tmp_path):
    assert proto.load_key(write_key(tmp_path / "k", KEY, 0o400)) == KEY


def test_key_missing(tmp_path):
    msg = refused(str(tmp_path / "authkey"))
    assert msg == f"{tmp_path}/authkey: heartbeat key (HBAUTHKEY) missing; make one with " \
                  "`asha-hb genkey` and copy it to both nodes"


@pytest.mark.parametrize("text", [b"", b"\n", b"  \t\r\n"])
def test_key_empty(tmp_path, text):
    assert refused(write_key(tmp_path / "k", text)).endswith(": heartbeat key is empty")


def test_key_too_short(tmp_path):
    assert refused(write_key(tmp_path / "k", b"short\n")).endswith(
        ": heartbeat key too short (5 bytes, at least 16)")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o602, 0o620, 0o660, 0o601])
def test_key_open_to_others(tmp_path, mode):
    msg = refused(write_key(tmp_path / "k", KEY, mode))
    assert msg.endswith(f": heartbeat key must be mode 0600, not {mode:04o} "
                        f"(others can read or write it)")


def test_key_symlink_refused(tmp_path):
    target = write_key(tmp_path / "real", KEY)
    os.symlink(target, tmp_path / "link")
    assert refused(str(tmp_path / "link")).endswith(
        ": heartbeat key is a symbolic link; set HBAUTHKEY to the file itself")


def test_key_directory_refused(tmp_path):
    os.mkdir(tmp_path / "dir", 0o700)
    assert refused(str(tmp_path / "dir")).endswith(": heartbeat key is not a regular file")


def test_key_fifo_refused_without_hanging(tmp_path):
    """A FIFO with no writer would block a plain open(O_RDONLY) forever."""
    import signal

    def hung(signum, frame):
        raise TimeoutError("load_key blocked on a FIFO")
    os.mkfifo(tmp_path / "fifo", 0o600)
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        assert refused(str(tmp_path / "fifo")).endswith(": heartbeat key is not a regular file")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- genkey

def test_make_key_writes_a_private_random_key(tmp_path):
    path = str(tmp_path / "authkey")
    old = os.umask(0)
    try:
        proto.make_key(path)
    finally:
        os.umask(old)
    st_ = os.stat(path)
    assert stat.S_IMODE(st_.st_mode) == 0o600
    text = open(path, "rb").read()
    assert len(text) == 65 and text.endswith(b"\n")
    int(text[:64], 16)                       # 64 hex digits
    assert proto.load_key(path) == text.strip()
    assert os.listdir(tmp_path) == ["authkey"]   # no temporary file left


def test_make_key_replaces_atomically_and_differs(tmp_path):
    path = str(tmp_path / "authkey")
    proto.make_key(path)
    first, inode = open(path).read(), os.stat(path).st_ino
    proto.make_key(path)
    assert open(path).read() != first
    assert os.stat(path).st_ino != inode       # renamed into place, not rewritten
    assert os.listdir(tmp_path) == ["authkey"]


def test_make_key_makes_a_private_directory(tmp_path):
    path = str(tmp_path / "etc" / "asha" / "authkey")
    proto.make_key(path)
    assert stat.S_IMODE(os.stat(tmp_path / "etc" / "asha").st_mode) == 0o700
    proto.load_key(path)


def test_two_nodes_with_one_generated_key_understand_each_other(tmp_path):
    path = str(tmp_path / "authkey")
    proto.make_key(path)
    a = Codec(proto.load_key(path), "pbx1", "pbx2")
    b = Codec(proto.load_key(path), "pbx2", "pbx1")
    assert b.decode(a.encode("beat", role="active"), "udp").fields == {"role": "active"}
