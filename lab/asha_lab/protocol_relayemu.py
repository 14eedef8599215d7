"""An emulated relay on a serial port's DTR or RTS line, as a pyserial URL
handler: relayemu:///path/line.json. For the unit tests and the lab.

asha.rhino opens it through its test seam (ASHA_SERIAL_URL=relayemu:///path,
ASHA_SERIAL_HANDLERS=asha_lab); the line states live in the JSON file, so that
every process sees one port, with a log of each change of the wired line. A
port without power (its node is off) has both lines low: the relay rests at NC,
the standby, and the port cannot be opened."""

import json
import os
import time

from serial.serialutil import SerialBase, SerialException

from .usbemu import LAB_DIR, _locked, _write

SCHEME = "relayemu"


class Line:
    """The emulated port's file and the test hooks."""

    def __init__(self, path):
        self.path = str(path)

    @classmethod
    def create(cls, path, wired="DTR"):
        line = cls(path)
        _write(line.path, {"wired": wired, "dtr": False, "rts": False, "powered": True,
                           "switches": [], "opens": 0})
        return line

    def read(self):
        with open(self.path) as f:
            return json.load(f)

    def position(self):
        data = self.read()
        return "primary" if data[data["wired"].lower()] else "standby"

    def switches(self):
        return self.read()["switches"]

    def power_off(self):
        with _locked(self.path):
            data = self.read()
            data["powered"] = False
            _set(data, "dtr", False, "power off")
            _set(data, "rts", False, "power off")
            _write(self.path, data)

    def power_on(self):
        with _locked(self.path):
            data = self.read()
            data["powered"] = True
            _write(self.path, data)

    def url(self):
        return f"{SCHEME}://{self.path}"

    def env(self):
        pythonpath = os.environ.get("PYTHONPATH", "")
        return {"ASHA_SERIAL_URL": self.url(), "ASHA_SERIAL_HANDLERS": "asha_lab",
                "PYTHONPATH": LAB_DIR + (":" + pythonpath if pythonpath else "")}


def _set(data, name, level, cause):
    if data[name] != level:
        data[name] = level
        if data["wired"].lower() == name:
            data["switches"].append({"t": time.time(), "line": name.upper(), "level": level,
                                     "position": "primary" if level else "standby",
                                     "cause": cause, "pid": os.getpid()})


class Serial(SerialBase):
    """pyserial's Serial for relayemu:// URLs: only the control lines do anything."""

    def open(self):
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        self._path = self._port.split("://", 1)[1]
        try:
            with open(self._path) as f:
                data = json.load(f)
        except OSError as e:
            raise SerialException(e.errno, f"could not open port {self._port}: {e}") from None
        if not data["powered"]:
            raise SerialException(2, f"could not open port {self._port}: no power")
        self._update("opens", None)
        self.is_open = True
        # As pyserial's own ports do: after opening, set both lines as the caller
        # asked before open() (pyserial's default: asserted). The brief pulse of
        # both lines that the kernel gives a real port on open is not emulated.
        self._update_dtr_state()
        self._update_rts_state()

    def _update(self, name, level):
        with _locked(self._path):
            with open(self._path) as f:
                data = json.load(f)
            if name == "opens":
                data["opens"] += 1
            else:
                _set(data, name, level, "command")
            _write(self._path, data)

    def _reconfigure_port(self, *args, **kwargs):
        pass

    def _update_dtr_state(self):
        self._update("dtr", bool(self._dtr_state))

    def _update_rts_state(self):
        self._update("rts", bool(self._rts_state))

    def close(self):
        self.is_open = False

    @property
    def in_waiting(self):
        return 0

    def read(self, size=1):
        return b""

    def write(self, data):
        return len(data)

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass
