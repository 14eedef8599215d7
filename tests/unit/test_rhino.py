"""asha-rhino and asha.rhino against emulated devices: the Rhino card and a USB
HID relay board as a pyusb backend (asha_lab.usbemu), a relay on a serial line
as a pyserial URL handler (asha_lab.protocol_relayemu), and a real pty.

The executable runs for real (bin/asha-rhino in a subprocess) wherever its
output or exit status is the point; acquire() and release() run in-process,
as asha-hb calls them."""

import logging
import os
import pty
import re
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from asha import config, exits, relay, rhino, state
from asha_lab import usbemu
from asha_lab.protocol_relayemu import Line

REPO = Path(__file__).resolve().parents[2]
HERE = os.uname().nodename
SEAMS = ("ASHA_USB_BACKEND", "ASHA_USBEMU", "ASHA_SERIAL_URL", "ASHA_SERIAL_HANDLERS")


def conf_text(tmp_path, extra=""):
    spf = "" if "RHINOSPF=" in extra else "RHINOSPF=YES\n"
    return (f"HACLUSTERIP=192.0.2.100/24\nHAPRINODE={HERE}\nHASECNODE=asha-test-peer\n"
            f"ASHARUNDIR={tmp_path}/run\n{spf}{extra}")


def write_conf(tmp_path, extra=""):
    path = tmp_path / "asha.conf"
    path.write_text(conf_text(tmp_path, extra))
    return str(path)


def load(tmp_path, extra=""):
    return config.load(write_conf(tmp_path, extra))


class Log(logging.Handler):
    """A logger whose records the test can read."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.log = logging.getLogger(f"asha-test-{id(self)}")
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        self.log.addHandler(self)

    def emit(self, record):
        self.records.append(record)

    def lines(self, level=logging.DEBUG):
        return [f"{r.levelname}: {r.getMessage()}" for r in self.records if r.levelno >= level]


@pytest.fixture
def log():
    return Log()


@pytest.fixture(autouse=True)
def no_seams(monkeypatch):
    for name in SEAMS:
        monkeypatch.delenv(name, raising=False)


def use(monkeypatch, env):
    for k, v in env.items():
        if k != "PYTHONPATH":
            monkeypatch.setenv(k, v)


@pytest.fixture
def card(tmp_path, monkeypatch):
    c = usbemu.Card.create(tmp_path / "card.json", usbemu.rhino_fields())
    use(monkeypatch, c.env())
    return c


@pytest.fixture
def board(tmp_path, monkeypatch):
    b = usbemu.Card.create(tmp_path / "board.json", usbemu.hidrelay_fields(relays=2, relay=2))
    use(monkeypatch, b.env())
    return b


def asha_rhino(conf, *args, env=None, timeout=30):
    """Run bin/asha-rhino; (status, stdout, stderr)."""
    full = {k: v for k, v in os.environ.items() if k not in SEAMS}
    full.update(env or {})
    p = subprocess.run([sys.executable, str(REPO / "bin" / "asha-rhino"), "-c", conf, *args],
                       capture_output=True, text=True, env=full, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------------------
# The Rhino card.

def test_rhino_switches_both_ways_and_reads_back(tmp_path, card):
    conf = write_conf(tmp_path)
    assert asha_rhino(conf, "status", env=card.env()) == (0, "primary\n", "")
    assert asha_rhino(conf, "standby", env=card.env()) == (0, "", "")
    assert card.position() == "standby"
    assert asha_rhino(conf, "status", env=card.env()) == (0, "standby\n", "")
    assert asha_rhino(conf, "primary", env=card.env()) == (0, "", "")
    assert [s["position"] for s in card.switches()] == ["standby", "primary"]
    st = state.read(str(tmp_path / "run" / state.RHINO_STATE))
    assert (st["POSITION"], st["RESULT"], st["VERIFIED"], st["DRIVER"]) == \
        ("primary", "ok", "yes", "rhino")
    assert st["BY"].startswith("asha-rhino primary (pid ")


def test_rhino_sends_the_configured_requests(tmp_path, monkeypatch):
    keys = dict(vendor=0x1234, product=0xABCD, reqtype=0x41, request=0x10, val_primary=0x00AA,
                val_standby=0x0055, getrequest=0x11)
    c = usbemu.Card.create(tmp_path / "card.json", usbemu.rhino_fields(**keys))
    conf = write_conf(tmp_path, "RHINOVENDOR=0x1234\nRHINOPRODUCT=0xabcd\nRHINOREQTYPE=0x41\n"
                                "RHINOREQUEST=0x10\nRHINOVALPRIMARY=0x00aa\nRHINOVALSTANDBY=0x0055\n"
                                "RHINOGETREQUEST=0x11\n")
    assert asha_rhino(conf, "standby", env=c.env())[0] == 0
    assert c.read()["state"] == 0x0055
    assert asha_rhino(conf, "status", env=c.env()) == (0, "standby\n", "")
    # The card as shipped answers other requests than the keys' defaults: it stalls.
    status, out, err = asha_rhino(write_conf(tmp_path, "RHINOVENDOR=0x1234\nRHINOPRODUCT=0xabcd\n"),
                                  "primary", env=c.env())
    assert (status, out) == (1, "")
    assert err.startswith("asha-rhino: USB device 1234:abcd (RHINOVENDOR/RHINOPRODUCT): the device "
                          "refused the request (it stalled)")
    assert c.read()["state"] == 0x0055


def test_wrong_ids_name_what_was_looked_for(tmp_path, card):
    conf = write_conf(tmp_path, "RHINOPRODUCT=0x0502\n")
    for command in ("status", "primary", "standby"):
        status, out, err = asha_rhino(conf, command, env=card.env())
        assert (status, out) == (1, "")
        assert err.startswith("asha-rhino: no USB device 0a8a:0502 (RHINOVENDOR/RHINOPRODUCT) "
                              "found"), err
        assert err.count("\n") == 1
    assert card.switches() == []


def test_no_device_at_all(tmp_path, monkeypatch):
    env = {"ASHA_USB_BACKEND": usbemu.BACKEND_SPEC, "ASHA_USBEMU": "",
           "PYTHONPATH": usbemu.LAB_DIR}
    status, out, err = asha_rhino(write_conf(tmp_path), "primary", env=env)
    assert (status, out) == (1, "")
    assert re.fullmatch(r"asha-rhino: no USB device 0a8a:0501 \(RHINOVENDOR/RHINOPRODUCT\) found "
                        r"\([0-9]+ tries in [01]\.[0-9]+ s\)\n", err), err


def test_no_permission_is_not_retried(tmp_path, card, log):
    card.deny()
    status, out, err = asha_rhino(write_conf(tmp_path), "standby", env=card.env())
    assert (status, out) == (1, "")
    assert err == ("asha-rhino: USB device 0a8a:0501 (RHINOVENDOR/RHINOPRODUCT): permission "
                   "denied (run as root, or give the device to asha's user with a udev rule)\n")
    assert card.read()["commands"] == 0 and card.position() == "primary"


def test_without_readback_status_reports_the_last_command(tmp_path, monkeypatch):
    c = usbemu.Card.create(tmp_path / "card.json", usbemu.rhino_fields(readback=False))
    conf = write_conf(tmp_path, "RHINOREADBACK=NO\n")
    status, out, err = asha_rhino(conf, "status", env=c.env())
    assert (status, out) == (exits.LSB_UNKNOWN, "unknown\n")
    assert "RHINOREADBACK=NO: the card cannot be read back, and nothing was commanded since" in err
    assert asha_rhino(conf, "standby", env=c.env()) == (0, "", "")
    assert c.position() == "standby"
    status, out, err = asha_rhino(conf, "status", env=c.env())
    assert (status, out) == (0, "standby\n")
    assert err.startswith("asha-rhino: as last commanded at ")
    assert err.endswith("RHINOREADBACK=NO: the card cannot be read back\n")


def test_a_state_that_is_neither_position_is_unknown(tmp_path, card):
    card.update(state=0x0007)
    status, out, err = asha_rhino(write_conf(tmp_path), "status", env=card.env())
    assert (status, out) == (exits.LSB_UNKNOWN, "unknown\n")
    assert err == ("asha-rhino: USB device 0a8a:0501 (RHINOVENDOR/RHINOPRODUCT): the card is at "
                   "wValue 0x0007, neither RHINOVALPRIMARY (0x0001) nor RHINOVALSTANDBY (0x0000)\n")
    # A switch sets it right.
    assert asha_rhino(write_conf(tmp_path), "standby", env=card.env())[0] == 0
    assert card.position() == "standby"


def test_status_says_when_the_card_moved_behind_asha(tmp_path, card):
    conf = write_conf(tmp_path)
    assert asha_rhino(conf, "primary", env=card.env())[0] == 0
    card.power_off()
    card.power_on()
    card.update(state=0)             # someone pressed the card's button
    status, out, err = asha_rhino(conf, "status", env=card.env())
    assert (status, out) == (0, "standby\n")
    assert err.startswith("asha-rhino: the card is at standby, but the last command was primary at ")


def test_same_value_for_both_positions_is_a_config_error(tmp_path, card):
    conf = write_conf(tmp_path, "RHINOVALSTANDBY=0x0001\n")
    assert asha_rhino(conf, "status", env=card.env()) == \
        (exits.CONFIG, "", f"{conf}:6: RHINOVALSTANDBY must differ from RHINOVALPRIMARY, not 0x0001\n")


def test_power_loss_leaves_the_card_at_nc_and_it_answers_nothing(tmp_path, card):
    conf = write_conf(tmp_path)
    card.power_off()
    assert card.position() == "standby"
    assert card.switches()[-1]["cause"] == "power off"
    status, out, err = asha_rhino(conf, "primary", env=card.env())
    assert status == 1 and "no USB device 0a8a:0501 (RHINOVENDOR/RHINOPRODUCT) found" in err
    assert card.position() == "standby"
    # Power back: the Rhino card bridges IN-NO again by itself (SARK's notes).
    card.power_on()
    assert card.position() == "primary"


# ---------------------------------------------------------------------------
# The USB HID relay board.

def test_hidrelay_switches_its_relay_only(tmp_path, board):
    conf = write_conf(tmp_path, "RHINODRIVER=hidrelay\nRHINORELAY=2\n")
    board.update(state=0b01)          # relay 1 drives something else and is on
    assert asha_rhino(conf, "status", env=board.env()) == (0, "standby\n", "")
    assert asha_rhino(conf, "primary", env=board.env()) == (0, "", "")
    assert board.read()["state"] == 0b11
    assert asha_rhino(conf, "status", env=board.env()) == (0, "primary\n", "")
    assert asha_rhino(conf, "standby", env=board.env()) == (0, "", "")
    assert board.read()["state"] == 0b01


def test_hidrelay_report_layout(board):
    # The bytes themselves, as the open-source drivers send and read them.
    import usb.core
    dev = usb.core.find(idVendor=0x16C0, idProduct=0x05DF, backend=usbemu.get_backend())
    assert dev.ctrl_transfer(0x20, 0x09, 0x0300, 0, [0xFF, 2, 0, 0, 0, 0, 0, 0]) == 8
    assert bytes(dev.ctrl_transfer(0xA0, 0x01, 0x0300, 0, 8)) == b"ASHA1\x00\x00\x02"
    dev.ctrl_transfer(0x20, 0x09, 0x0300, 0, [0xFD, 2, 0, 0, 0, 0, 0, 0])
    assert bytes(dev.ctrl_transfer(0xA0, 0x01, 0x0300, 0, 8))[7] == 0


def test_hidrelay_relay_beyond_the_board(tmp_path, board):
    status, out, err = asha_rhino(write_conf(tmp_path, "RHINODRIVER=hidrelay\nRHINORELAY=3\n"),
                                  "primary", env=board.env())
    assert (status, out, err) == (1, "", "asha-rhino: RHINORELAY=3, but the board (USBRelay2) "
                                         "has 2 relays\n")


def test_hidrelay_two_boards_or_another_device(tmp_path, board):
    conf = write_conf(tmp_path, "RHINODRIVER=hidrelay\n")
    other = usbemu.Card.create(tmp_path / "b2.json", usbemu.hidrelay_fields(board_id="XYZ12"))
    status, out, err = asha_rhino(conf, "primary", env=board.env([other]))
    assert (status, err) == (1, "asha-rhino: 2 USB HID relay boards found (ids ASHA1, XYZ12); "
                                "asha-rhino drives one: unplug the others\n")
    gadget = usbemu.Card.create(tmp_path / "g.json",
                                usbemu.hidrelay_fields(product_name="LED blinker"))
    status, out, err = asha_rhino(conf, "primary", env=gadget.env())
    assert (status, err) == (1, "asha-rhino: USB device 16c0:05df is 'LED blinker', not a USB HID "
                                "relay board (USBRelay1 to USBRelay8)\n")
    assert board.read()["state"] == other.read()["state"] == gadget.read()["state"] == 0


def test_hidrelay_absent_and_powerless(tmp_path, board):
    conf = write_conf(tmp_path, "RHINODRIVER=hidrelay\nRHINORELAY=2\n")
    assert asha_rhino(conf, "primary", env=board.env())[0] == 0
    board.power_off()
    assert board.position() == "standby"
    status, out, err = asha_rhino(conf, "status", env=board.env())
    assert status == 1 and err.startswith("asha-rhino: no USB HID relay board 16c0:05df found")
    board.power_on()                  # the board forgets: its relays come up off
    status, out, err = asha_rhino(conf, "status", env=board.env())
    assert (status, out) == (0, "standby\n")
    assert err.startswith("asha-rhino: the card is at standby, but the last command was primary ")
    assert err.endswith(": something else moved it, or it lost power\n")


# ---------------------------------------------------------------------------
# The serial line.

def test_serial_sets_the_configured_line(tmp_path, monkeypatch):
    for wired in ("DTR", "RTS"):
        line = Line.create(tmp_path / f"{wired}.json", wired=wired)
        conf = write_conf(tmp_path, f"RHINODRIVER=serial\nRHINOSERIAL=/dev/ttyS1\nRHINOLINE={wired}\n")
        assert asha_rhino(conf, "primary", env=line.env()) == (0, "", "")
        assert line.position() == "primary" and line.read()[wired.lower()] is True
        assert asha_rhino(conf, "standby", env=line.env()) == (0, "", "")
        assert line.position() == "standby" and line.read()[wired.lower()] is False
        assert [s["line"] for s in line.switches()] == [wired, wired]


def test_serial_status_is_what_was_last_commanded(tmp_path):
    line = Line.create(tmp_path / "line.json")
    conf = write_conf(tmp_path, "RHINODRIVER=serial\nRHINOSERIAL=/dev/ttyS1\n")
    status, out, err = asha_rhino(conf, "status", env=line.env())
    assert (status, out) == (exits.LSB_UNKNOWN, "unknown\n")
    assert err.startswith("asha-rhino: the serial driver cannot read the line back")
    assert asha_rhino(conf, "primary", env=line.env())[0] == 0
    status, out, err = asha_rhino(conf, "status", env=line.env())
    assert (status, out) == (0, "primary\n")
    assert err.startswith("asha-rhino: as last commanded at ")
    assert "by asha-rhino primary (pid " in err
    assert "the serial driver cannot read the line back" in err
    assert line.read()["opens"] == 1          # status never opened the port


def test_serial_on_a_pty_fails_clearly_and_leaves_hupcl_cleared(tmp_path):
    master, slave = pty.openpty()
    try:
        name = os.ttyname(slave)
        attrs = termios.tcgetattr(slave)
        attrs[2] |= termios.HUPCL
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        conf = write_conf(tmp_path, f"RHINODRIVER=serial\nRHINOSERIAL={name}\n")
        status, out, err = asha_rhino(conf, "primary")
        assert (status, out, err) == (
            1, "", f"asha-rhino: serial port {name} (RHINOSERIAL), line DTR: cannot set DTR: "
                   f"Inappropriate ioctl for device; the port has no modem control lines "
                   f"(a pty has none)\n")
        # The port was opened and HUPCL cleared before the line was set.
        assert not termios.tcgetattr(slave)[2] & termios.HUPCL
        st = state.read(str(tmp_path / "run" / state.RHINO_STATE))
        assert (st["POSITION"], st["RESULT"]) == ("primary", "failed")
    finally:
        os.close(master)
        os.close(slave)


def test_serial_through_pyserial_loop_url(tmp_path, log, monkeypatch):
    monkeypatch.setenv("ASHA_SERIAL_URL", "loop://")
    cfg = load(tmp_path, "RHINODRIVER=serial\nRHINOSERIAL=/dev/ttyS1\nRHINOLINE=RTS\n")
    assert rhino.acquire(cfg, log.log) is True
    assert re.fullmatch(r"INFO: PRI card switched to primary \(IN-NO\) in [0-9]+ ms, not read back "
                        r"\(the serial driver cannot read the line back: opening the port to look "
                        r"would pulse DTR and RTS\)", log.lines()[-1]), log.lines()


def test_serial_missing_port(tmp_path):
    conf = write_conf(tmp_path, f"RHINODRIVER=serial\nRHINOSERIAL={tmp_path}/ttyNONE\n")
    status, out, err = asha_rhino(conf, "standby")
    assert (status, out) == (1, "")
    assert err.startswith(f"asha-rhino: serial port {tmp_path}/ttyNONE (RHINOSERIAL), line DTR: "
                          f"no such port (")


def test_serial_without_a_port_is_a_config_error(tmp_path):
    conf = write_conf(tmp_path, "RHINOSPF=NO\nRHINODRIVER=serial\n")
    assert asha_rhino(conf, "status") == \
        (exits.CONFIG, "", f"{conf}:6: RHINODRIVER=serial needs RHINOSERIAL, the serial port of "
                           f"the relay\n")


# ---------------------------------------------------------------------------
# acquire() and release(), as asha-hb's chain calls them.

def test_release_then_acquire(tmp_path, card, log):
    cfg = load(tmp_path)
    assert rhino.release(cfg, log.log) is True
    assert card.position() == "standby"
    assert rhino.acquire(cfg, log.log) is True
    assert card.position() == "primary"
    assert rhino.acquire(cfg, log.log) is True
    info = log.lines(logging.INFO)
    assert info[0].startswith("INFO: PRI card switched to standby (IN-NC) in ")
    assert info[0].endswith(" ms, read back from the card")
    assert info[1].startswith("INFO: PRI card switched to primary (IN-NO) in ")
    assert info[2] == "INFO: PRI card already at primary (IN-NO), read back from the card"
    assert state.read(str(tmp_path / "run" / state.RHINO_STATE))["BY"].startswith(
        f"{log.log.name} acquire (pid {os.getpid()})")


def test_not_on_the_card_node_nothing_is_done(tmp_path, card, log):
    cfg = load(tmp_path, "RHINONODE=asha-test-peer\n")
    assert rhino.acquire(cfg, log.log) is None
    assert rhino.release(cfg, log.log) is None
    assert log.lines() == [
        f"INFO: PRI card: attached to asha-test-peer (RHINONODE), not to this node {HERE}; "
        f"nothing to acquire here",
        f"INFO: PRI card: attached to asha-test-peer (RHINONODE), not to this node {HERE}; "
        f"nothing to release here"]
    assert card.read()["commands"] == 0
    status, out, err = asha_rhino(write_conf(tmp_path, "RHINONODE=asha-test-peer\n"), "standby",
                                  env=card.env())
    assert (status, out, err) == (1, "", f"asha-rhino: the PRI card is attached to asha-test-peer "
                                         f"(RHINONODE), not to this node {HERE}; run asha-rhino "
                                         f"there\n")


def test_rhinospf_no_does_nothing(tmp_path, card, log):
    cfg = load(tmp_path, "RHINOSPF=NO\n")
    assert rhino.acquire(cfg, log.log) is None and rhino.release(cfg, log.log) is None
    assert log.lines(logging.INFO) == [] and card.read()["commands"] == 0


def alert_conf(tmp_path):
    alerts = tmp_path / "alerts"
    return alerts, f"ALERTCMD=\"printf '%s\\\\n' >>{alerts}\"\n"


def wait_for(path, lines, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return path.read_text().splitlines()
        time.sleep(0.02)
    return path.read_text().splitlines() if path.exists() else []


def test_a_card_that_times_out_costs_at_most_a_second(tmp_path, card, log):
    alerts, alert = alert_conf(tmp_path)
    cfg = load(tmp_path, alert)
    card.hang(5, mode="timeout")
    start = time.monotonic()
    assert rhino.release(cfg, log.log) is False
    took = time.monotonic() - start
    assert took <= rhino.BUDGET + rhino.GRACE, took
    lines = log.lines(logging.WARNING)
    assert lines[0] == ("WARNING: PRI card to standby, try 1: USB device 0a8a:0501 "
                        "(RHINOVENDOR/RHINOPRODUCT): no answer within 0.3 s (RHINOTIMEOUT); "
                        "trying again")
    assert lines[-1].startswith("CRITICAL: PRI card not switched to standby (IN-NC): USB device "
                                "0a8a:0501 (RHINOVENDOR/RHINOPRODUCT): no answer within ")
    assert lines[-1].endswith("; going on without it")
    assert re.search(r"\(([2-9]) tries in [01]\.[0-9]+ s\)", lines[-1])   # several tries within the second
    assert len(lines) == 2                     # the same failure is logged once, then the outcome
    assert wait_for(alerts, 1) == [f"asha on {HERE}: " + lines[-1][len("CRITICAL: "):
                                                                   -len("; going on without it")]]
    st = state.read(str(tmp_path / "run" / state.RHINO_STATE))
    assert (st["POSITION"], st["RESULT"]) == ("standby", "failed")
    assert card.position() == "primary"


def test_a_stuck_call_is_given_up(tmp_path, card, log):
    alerts, alert = alert_conf(tmp_path)
    cfg = load(tmp_path, alert)
    card.hang(3, mode="stuck")
    start = time.monotonic()
    assert rhino.acquire(cfg, log.log) is False
    assert time.monotonic() - start <= rhino.BUDGET + rhino.GRACE + 0.1
    assert log.lines(logging.CRITICAL) == [
        "CRITICAL: PRI card not switched to primary (IN-NO): a call to the device is stuck "
        "(it ignores its timeout); going on without it"]
    assert wait_for(alerts, 1) == [f"asha on {HERE}: PRI card not switched to primary (IN-NO): "
                                   f"a call to the device is stuck (it ignores its timeout)"]


def test_a_card_that_answers_late_is_retried(tmp_path, card, log):
    cfg = load(tmp_path, "RHINOTIMEOUT=0.2\n")
    card.hang(0.3, mode="timeout")

    def recover():                    # the card comes back after its first timeout
        time.sleep(0.25)
        card.hang(0)

    t = threading.Thread(target=recover)
    t.start()
    assert rhino.release(cfg, log.log) is True
    t.join()
    assert card.position() == "standby"
    assert log.lines(logging.WARNING)[0].startswith("WARNING: PRI card to standby, try 1: ")
    assert log.lines(logging.INFO)[-1].startswith("INFO: PRI card switched to standby (IN-NC) in ")


def test_acquire_never_raises(tmp_path, log, monkeypatch):
    monkeypatch.setenv("ASHA_USB_BACKEND", "no.such.module:backend")
    cfg = load(tmp_path)
    assert rhino.acquire(cfg, log.log) is False
    assert log.lines() == [
        "CRITICAL: PRI card not switched to primary (IN-NO): ASHA_USB_BACKEND=no.such.module:backend: "
        "cannot load it: No module named 'no'; going on without it"]


# ---------------------------------------------------------------------------
# The command line itself.

def test_usage_errors(tmp_path):
    conf = write_conf(tmp_path)
    status, out, err = asha_rhino(conf, "sideways")
    assert status == exits.USAGE and err.startswith("asha-rhino: unexpected argument: sideways")
    status, out, err = asha_rhino(conf)
    assert status == exits.USAGE and "Usage:" in err


def test_help_ends_with_an_example():
    p = subprocess.run([sys.executable, str(REPO / "bin" / "asha-rhino"), "--help"],
                       capture_output=True, text=True)
    assert p.returncode == 0
    assert p.stdout.rstrip().splitlines()[-1].strip() == "asha-rhino standby"


def test_usb_backend_seam(monkeypatch):
    monkeypatch.setenv("ASHA_USB_BACKEND", "asha_lab.usbemu")          # get_backend by default
    assert isinstance(relay.usb_backend(), usbemu.Backend)
    monkeypatch.setenv("ASHA_USB_BACKEND", "asha_lab.usbemu:nothing")
    with pytest.raises(relay.DeviceError) as e:
        relay.usb_backend()
    assert str(e.value).startswith("ASHA_USB_BACKEND=asha_lab.usbemu:nothing: cannot load it: ")
    monkeypatch.delenv("ASHA_USB_BACKEND")
    assert relay.usb_backend() is None
