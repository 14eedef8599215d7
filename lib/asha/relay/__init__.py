"""Drivers for the relay that carries the PRI line: the Rhino card and the USB
HID relay boards over pyusb, and a relay on a serial port's DTR or RTS line.

Every driver moves the relay to one of two positions, "primary" (IN-NO: the
PRI goes to the node the card is attached to) or "standby" (IN-NC: the other
node, where the relay also rests without power), and reads the position back
where the device can tell. A failure is a DeviceError: one line that names
what was looked for, and whether trying again can help."""

import importlib
import os

from .. import config

PRIMARY, STANDBY = "primary", "standby"
POSITIONS = (PRIMARY, STANDBY)
CONTACT = {PRIMARY: "IN-NO", STANDBY: "IN-NC"}

# Test seams: a pyusb backend object (an emulated card) instead of libusb,
# and a pyserial URL (with its handler packages) instead of RHINOSERIAL.
USB_BACKEND_ENV = "ASHA_USB_BACKEND"
SERIAL_URL_ENV = "ASHA_SERIAL_URL"
SERIAL_HANDLERS_ENV = "ASHA_SERIAL_HANDLERS"


class DeviceError(Exception):
    """The device could not be found, opened or made to answer.

    retry is False when trying again within the second cannot help (no
    permission, a configuration that does not fit the device)."""

    def __init__(self, message, retry=True):
        super().__init__(message)
        self.retry = retry


class UnknownPosition(DeviceError):
    """The device answered with a state that is neither position."""

    def __init__(self, message):
        super().__init__(message, retry=False)


class Timer:
    """Seconds one transfer may take: RHINOTIMEOUT, but never past the deadline."""

    def __init__(self, per_transfer, deadline, clock):
        self.per_transfer, self.deadline, self.clock = per_transfer, deadline, clock

    def seconds(self):
        left = self.deadline - self.clock()
        if left <= 0.001:
            raise DeviceError("no time left for another transfer")
        return min(self.per_transfer, left)

    def ms(self):
        return max(1, int(self.seconds() * 1000))


class Driver:
    """What rhino.py needs of a driver."""

    readable = True          # the device can tell its position
    why_unreadable = ""      # if not, why not (for status)

    def describe(self):
        raise NotImplementedError

    def read(self, timer):
        """PRIMARY or STANDBY as the device tells it; UnknownPosition otherwise."""
        raise NotImplementedError

    def set(self, position, timer):
        raise NotImplementedError


def open_driver(cfg):
    """The driver RHINODRIVER names, checked against the configuration."""
    if cfg.RHINODRIVER == "rhino":
        from .rhinocard import RhinoCard
        return RhinoCard(cfg)
    if cfg.RHINODRIVER == "hidrelay":
        from .hidrelay import HidRelay
        return HidRelay(cfg)
    from .serialline import SerialLine
    return SerialLine(cfg)


def config_error(cfg, key, message):
    """A ConfigError pointing at key's line, as config.load's own errors do."""
    line = cfg.line_of(key)
    where = f"{cfg.path}:{line}" if line else cfg.path
    return config.ConfigError([f"{where}: {message}"])


def usb_backend():
    """The pyusb backend ASHA_USB_BACKEND=module:attr names, or None for pyusb's
    own choice (libusb 1.0, OpenUSB, libusb 0.1). attr is a backend object or a
    function returning one, as pyusb's backend modules' get_backend; it
    defaults to get_backend."""
    spec = os.environ.get(USB_BACKEND_ENV)
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr or "get_backend")
    except (ImportError, AttributeError) as e:
        raise DeviceError(f"{USB_BACKEND_ENV}={spec}: cannot load it: {e}", retry=False) from None
    if callable(obj) and not hasattr(obj, "enumerate_devices"):
        obj = obj()
    if obj is None:
        raise DeviceError(f"{USB_BACKEND_ENV}={spec}: gave no backend", retry=False)
    return obj
