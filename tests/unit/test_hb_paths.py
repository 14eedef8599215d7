"""asha-hb's paths (asha.hb.paths): COBS framing, the serial path over real
pseudo-terminals (split reads, noise, a cable pulled mid-frame, a line that
hangs up or is not there yet), and the UDP path on loopback. What must come
out is exactly what was sent, and noise must never become an accepted
message: the tests pass every received frame through a real Codec."""

import os
import select
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asha import config, exits
from asha.hb import paths, proto
from asha.hb.paths import SerialPath, UDPPath, cobs_decode, cobs_encode

from .test_asterisk import Log as _Log


class Log(_Log):
    @property
    def text(self):
        """The lines as the log file shows them, level first."""
        return [f"{level.upper()}: {msg}" for level, msg in self.lines]

KEY = b"0123456789abcdef0123456789abcdef"


def wait_until(what, timeout=3.0):
    end = time.monotonic() + timeout
    while True:
        v = what()
        if v or time.monotonic() > end:
            return v
        time.sleep(0.005)


# ---------------------------------------------------------------- COBS

# The examples of the COBS paper and of Wikipedia's article, without the
# closing zero; asha's encoder writes these same bytes.
VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("data, encoded", VECTORS)
def test_cobs_known_vectors(data, encoded):
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("data, standard", [
    # a block of 254 non-zero bytes at the end: the minimal encoding stops
    # after it; asha adds an empty block. Both decode to the same bytes.
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (b"\x00" + bytes(range(1, 255)), b"\x01\xff" + bytes(range(1, 255))),
])
def test_cobs_reads_the_minimal_encoding_of_a_full_last_block(data, standard):
    assert cobs_decode(standard) == data
    assert cobs_decode(cobs_encode(data)) == data


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 509, 1000])
@pytest.mark.parametrize("fill", [b"\x00", b"\x01", b"\xff"])
def test_cobs_lengths_around_the_block_size(n, fill):
    data = fill * n
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data
    assert len(enc) <= n + n // 254 + 2


@pytest.mark.parametrize("bad", [
    b"\x00",                 # code 0 cannot appear inside a frame
    b"\x05\x11\x22",         # block runs past the end (a frame cut short)
    b"\x03\x11\x00",         # a zero inside a block
    b"\x02\x11\x00\x01",
    b"\xff" + b"\x01" * 10,  # full block cut short
])
def test_cobs_invalid_is_none(bad):
    assert cobs_decode(bad) is None


def test_cobs_empty():
    assert cobs_encode(b"") == b"\x01"
    assert cobs_decode(b"\x01") == b""
    assert cobs_decode(b"") == b""


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_cobs_round_trip(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1500))
def test_cobs_decode_never_raises(data):
    out = cobs_decode(data)
    assert out is None or isinstance(out, bytes)


# ---------------------------------------------------------------- serial over a pty

class Line:
    """A SerialPath on the slave end of a pty; the test holds the master end,
    which plays the cable and the peer."""

    def __init__(self, baud=19200):
        self.master, slave = os.openpty()
        self.device = os.ttyname(slave)
        os.close(slave)              # pyserial opens it by name, as asha-hb does
        os.set_blocking(self.master, False)
        self.log = Log()
        self.path = SerialPath(self.device, baud, self.log)
        self.sender = proto.Codec(KEY, "pbx1", "pbx2", gen=1)
        self.receiver = proto.Codec(KEY, "pbx2", "pbx1", gen=2)

    def frame(self, **fields):
        return b"\0" + cobs_encode(self.sender.encode("beat", **fields)) + b"\0"

    def write(self, data):
        os.write(self.master, data)

    def read_master(self, want, timeout=3.0):
        """Bytes the path sent, once at least want of them came."""
        out = b""
        end = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < end:
            if select.select([self.master], [], [], 0.05)[0]:
                out += os.read(self.master, 4096)
        return out

    def recv_all(self, settle=0.1, timeout=3.0, want=None):
        """Every frame the path hands back until want came (or settle s of quiet)."""
        out, last, end = [], time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.path.recv()
            if got:
                out += got
                last = time.monotonic()
            if want is not None and len(out) >= want:
                break
            if want is None and time.monotonic() - last > settle:
                break
            time.sleep(0.005)
        return out

    def accepted(self, frames):
        """The frames that the codec takes, as (seq, fields); the rest are counted."""
        out = []
        for f in frames:
            try:
                m = self.receiver.decode(f, self.path.name)
            except proto.Rejected:
                continue
            out.append((m.seq, m.fields))
        return out

    def close(self):
        self.path.close()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def line():
    ln = Line()
    yield ln
    ln.close()


def test_serial_opens_and_sends_a_zero_delimited_cobs_frame(line):
    assert line.path.fileno() is not None and line.log.text == []
    msg = line.sender.encode("beat", role="active")
    line.path.send(msg)
    wire = line.read_master(len(msg) + 3)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert cobs_decode(wire[1:-1]) == msg


def test_serial_round_trip_through_a_cable(line):
    """Two paths, the test copying bytes from one pty master to the other."""
    other = Line()
    try:
        msgs = [line.sender.encode("beat", role="active", n=i) for i in range(20)]
        for m in msgs:
            line.path.send(m)
        wire = line.read_master(sum(len(cobs_encode(m)) + 2 for m in msgs))
        other.write(wire)
        got = other.recv_all(want=20)
        assert got == msgs
    finally:
        other.close()


def test_serial_frame_split_across_reads(line):
    for cut in (1, 2, 20, -1):
        frame = line.frame(role="active")             # a new sequence number each time
        cut = cut % len(frame)
        line.write(frame[:cut])
        assert line.recv_all(settle=0.05) == [], cut      # nothing whole yet
        line.write(frame[cut:])
        assert len(line.accepted(line.recv_all(want=1))) == 1, cut


def test_serial_frame_one_byte_at_a_time(line):
    frame = line.frame(role="standby")
    got = []
    for b in frame:
        line.write(bytes([b]))
        time.sleep(0.001)
        got += line.path.recv()
    got += line.recv_all(want=1 - len(got)) if not got else []
    assert [f for _, f in line.accepted(got)] == [{"role": "standby"}]


def test_serial_noise_between_frames_costs_nothing(line):
    rng = __import__("random").Random(7)
    frames = [line.frame(role="active", n=i) for i in range(30)]
    stream = b""
    for f in frames:
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) + f
    stream += bytes(rng.randrange(256) for _ in range(25))
    line.write(stream)
    ok = line.accepted(line.recv_all(settle=0.2))
    assert [f["n"] for _, f in ok] == [str(i) for i in range(30)]
    assert line.receiver.counters["accepted"] == 30


def test_serial_noise_never_becomes_a_message(line):
    rng = __import__("random").Random(11)
    noise = bytes(rng.randrange(256) for _ in range(20000))
    for i in range(0, len(noise), 4000):
        line.write(noise[i:i + 4000])
        time.sleep(0.01)
        line.accepted(line.recv_all(settle=0.02))
    line.accepted(line.recv_all(settle=0.1))
    assert line.receiver.counters["accepted"] == 0
    line.write(line.frame(role="active"))             # and the line still works
    assert len(line.accepted(line.recv_all(want=1))) == 1


def test_serial_cable_pulled_mid_frame(line):
    first, second = line.frame(role="active", n=1), line.frame(role="active", n=2)
    line.write(first[:len(first) // 2])               # the cable goes here ...
    line.write(second)                                # ... and is back for the next beat
    ok = line.accepted(line.recv_all(settle=0.2))
    assert [f["n"] for _, f in ok] == ["2"]
    assert line.path.dropped + sum(v for k, v in line.receiver.counters.items()
                                   if k != "accepted") == 1


def test_serial_endless_junk_without_a_zero_is_dropped(line):
    line.write(b"\x55" * (4 * paths.MAX_FRAME))
    time.sleep(0.05)
    line.recv_all(settle=0.1)
    assert line.path.dropped >= 1
    assert len(line.path.buf) <= 2 * paths.MAX_FRAME
    line.write(line.frame(role="active"))
    assert len(line.accepted(line.recv_all(settle=0.2))) == 1


def test_serial_oversized_frame_is_dropped(line):
    line.write(b"\0" + b"\x07" * (paths.MAX_FRAME + 100) + b"\0" + line.frame(role="x"))
    ok = line.accepted(line.recv_all(settle=0.2))
    assert [f for _, f in ok] == [{"role": "x"}]
    assert line.path.dropped == 1


def test_serial_hangup_is_logged_once_and_the_path_goes_on(line):
    os.close(line.master)                              # the other end is gone
    assert wait_until(lambda: line.path.recv() == [] and line.path.fileno() is None)
    assert line.log.text == [
        f"WARNING: serial:{line.device}: line lost (hangup); reopening every second"] or \
        line.log.text[0].startswith(f"WARNING: serial:{line.device}: line lost (")
    line.path.send(b"still beating")                   # no exception without a port
    assert line.path.recv() == []
    line.path.poll_reopen(time.monotonic() + 5)       # the pty is gone: it cannot open
    line.path.poll_reopen(time.monotonic() + 10)
    assert line.path.fileno() is None
    assert len(line.log.text) == 1                   # said once, not every second


def test_serial_device_that_appears_later(tmp_path):
    link = str(tmp_path / "ttyHB")
    log = Log()
    path = SerialPath(link, 19200, log)               # not there at start
    try:
        assert path.fileno() is None
        assert log.text == [f"WARNING: serial:{link}: cannot open: No such file or directory"]
        master, slave = os.openpty()
        os.symlink(os.ttyname(slave), link)
        path.poll_reopen(time.monotonic())            # within the second: not yet
        assert path.fileno() is None
        path.poll_reopen(time.monotonic() + 1.5)
        assert path.fileno() is not None
        assert log.text[-1] == f"INFO: serial:{link}: open again"
        os.write(master, b"\0" + cobs_encode(b"hello") + b"\0")
        assert wait_until(lambda: path.recv()) == [b"hello"]
        os.close(slave)
        os.close(master)
    finally:
        path.close()


def test_serial_device_is_opened_exclusively(line):
    log = Log()
    second = SerialPath(line.device, 19200, log)
    try:
        assert second.fileno() is None
        assert log.text[0].startswith(f"WARNING: serial:{line.device}: cannot open: ")
        assert line.path.fileno() is not None
    finally:
        second.close()


def test_serial_not_a_terminal_cannot_open(tmp_path):
    log = Log()
    p = SerialPath("/dev/null", 19200, log)
    try:
        assert p.fileno() is None
        assert log.text[0].startswith("WARNING: serial:/dev/null: cannot open: ")
    finally:
        p.close()


# ---------------------------------------------------------------- UDP on loopback

def free_port():
    """A UDP port free on 127.0.0.1 and 127.0.0.2 (both loopback on Linux)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        try:
            for addr in ("127.0.0.1", "127.0.0.2"):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                t.bind((addr, port))
                t.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port")


@pytest.fixture
def udp_pair():
    port = free_port()
    a = UDPPath("127.0.0.1", "127.0.0.2", port, Log())
    b = UDPPath("127.0.0.2", "127.0.0.1", port, Log())
    yield a, b, port
    a.close()
    b.close()


def test_udp_round_trip(udp_pair):
    a, b, _ = udp_pair
    assert (a.name, b.name) == ("udp:127.0.0.2", "udp:127.0.0.1")
    sender = proto.Codec(KEY, "pbx1", "pbx2", gen=1)
    receiver = proto.Codec(KEY, "pbx2", "pbx1", gen=2)
    msgs = [sender.encode("beat", role="active", n=i) for i in range(5)]
    for m in msgs:
        a.send(m)
    got = wait_until(lambda: b.recv())
    got += b.recv()
    assert got == msgs
    assert [receiver.decode(g, b.name).fields["n"] for g in got] == ["0", "1", "2", "3", "4"]
    assert b.recv() == []


def test_udp_from_another_address_is_dropped_and_counted(udp_pair):
    a, b, port = udp_pair
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.3", 0))
    try:
        stranger.sendto(b"AH\x01 not from the peer", ("127.0.0.2", port))
        a.send(b"from the peer")
        got = wait_until(lambda: b.recv())
        assert got == [b"from the peer"]
        assert b.foreign == 1
    finally:
        stranger.close()


def test_udp_a_flood_is_read_in_bounded_batches(udp_pair):
    a, b, _ = udp_pair
    for i in range(100):
        a.send(b"%d" % i)
    time.sleep(0.1)
    first = b.recv()
    assert len(first) == 64                            # one wake-up never reads for ever
    rest = b.recv()
    assert first + rest == [b"%d" % i for i in range(100)]


def test_udp_send_error_is_logged_once_then_recovery(udp_pair):
    a, b, _ = udp_pair
    for _ in range(3):
        a.send(b"x" * 70000)                           # EMSGSIZE: too big for a datagram
    assert a.log.text == ["WARNING: udp:127.0.0.2: cannot send: Message too long"]
    a.send(b"fits")
    assert a.log.text[-1] == "INFO: udp:127.0.0.2: sending again"
    assert wait_until(lambda: b.recv()) == [b"fits"]


def test_udp_binds_before_its_address_is_up():
    """HAPRIADDR not yet on any interface at boot: the path is made, sends fail
    and are logged once, and nothing raises."""
    port = free_port()
    log = Log()
    p = UDPPath("192.0.2.213", "127.0.0.1", port, log)
    try:
        p.send(b"beat")
        p.send(b"beat")
        assert p.recv() == []
        assert len(log.text) == 1 and log.text[0].startswith("WARNING: udp:127.0.0.1: cannot send: ")
    finally:
        p.close()


def test_udp_port_taken_is_one_line():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # no SO_REUSEADDR: exclusive
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        with pytest.raises(exits.AshaError) as e:
            UDPPath("127.0.0.1", "127.0.0.2", port, Log())
        assert str(e.value) == f"udp:127.0.0.2: cannot listen on 127.0.0.1 port {port}: " \
                               "Address already in use"
    finally:
        s.close()


def test_udp_ipv6_loopback():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    p = UDPPath("::1", "::1", port, Log())          # talks to itself: one address on ::1
    try:
        assert p.name == "udp:::1"
        p.send(b"six")
        assert wait_until(lambda: p.recv()) == [b"six"]
    finally:
        p.close()


@pytest.mark.parametrize("name", ["pbx1", "asterisk-node-b.example.org"])
def test_the_longest_serial_beat_is_what_the_configuration_counts(name):
    # asha.conf refuses an HBBAUD too slow for HBKEEPALIVE by this count.
    codec = proto.Codec(b"k" * 32, name, "peer")
    codec.seq = 2 ** 40                                 # every byte of the number non-zero
    data = codec.encode_fields("beat", (("role", "releasing"), ("since", "9999999999.999999"),
                                        ("yld", 1), ("want", 1), ("ping", 1)))
    frame = b"\0" + cobs_encode(data) + b"\0"           # as SerialPath.send writes it
    assert len(frame) - len(name) <= config.SERIAL_BEAT_BYTES
    assert len(frame) - len(name) >= config.SERIAL_BEAT_BYTES - 3     # and not far over it
