"""A relay wired to a serial port's DTR or RTS line, driven with pyserial.

The line asserted energises the relay (IN-NO, the primary); the line low lets
it rest at NC (the standby), which is also where it is when the node is off.
The port is opened, HUPCL cleared so that closing it leaves the line as set,
the line set, and the port closed. Nothing reads a control line back without
opening the port, and opening a real port asserts DTR and RTS for a moment:
the position is never read back, status reports what was last commanded."""

import errno
import os
import termios

from . import (PRIMARY, SERIAL_HANDLERS_ENV, SERIAL_URL_ENV, DeviceError, Driver,
               config_error)


class SerialLine(Driver):

    readable = False
    why_unreadable = ("the serial driver cannot read the line back: opening the port to "
                      "look would pulse DTR and RTS")

    def __init__(self, cfg):
        self.port = os.environ.get(SERIAL_URL_ENV) or cfg.RHINOSERIAL
        self.line = cfg.RHINOLINE
        if not self.port:
            raise config_error(cfg, "RHINODRIVER",
                               "RHINODRIVER=serial needs RHINOSERIAL, the serial port of the relay")

    def describe(self):
        return f"serial port {self.port} (RHINOSERIAL), line {self.line}"

    def set(self, position, timer):
        import serial
        for package in os.environ.get(SERIAL_HANDLERS_ENV, "").split(","):
            if package and package not in serial.protocol_handler_packages:
                serial.protocol_handler_packages.append(package)
        level = position == PRIMARY
        try:
            port = serial.serial_for_url(self.port, do_not_open=True)
        except (ValueError, serial.SerialException) as e:
            raise DeviceError(f"{self.describe()}: {e}", retry=False) from None
        # Set before open: pyserial applies it as soon as the port is open.
        setattr(port, self.line.lower(), level)
        try:
            port.open()
        except serial.SerialException as e:
            code = e.errno
            if code in (errno.EACCES, errno.EPERM):
                raise DeviceError(f"{self.describe()}: permission denied", retry=False) from None
            if code == errno.ENOENT:
                raise DeviceError(f"{self.describe()}: no such port") from None
            raise DeviceError(f"{self.describe()}: cannot open it: {e}") from None
        try:
            fd = getattr(port, "fd", None)
            if fd is not None:
                # Without this the kernel drops DTR and RTS when the port closes
                # (HUPCL), and the relay would fall back the moment asha-rhino exits.
                attrs = termios.tcgetattr(fd)
                attrs[2] &= ~termios.HUPCL
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
            # Once more, now that it is open: this raises where setting a line fails.
            setattr(port, self.line.lower(), level)
        except (OSError, termios.error) as e:
            code = e.errno if isinstance(e, OSError) else e.args[0]
            text = e.strerror if isinstance(e, OSError) else e.args[-1]
            if code in (errno.ENOTTY, errno.EINVAL):
                raise DeviceError(f"{self.describe()}: cannot set {self.line}: {text}; the port "
                                  f"has no modem control lines (a pty has none)",
                                  retry=False) from None
            raise DeviceError(f"{self.describe()}: cannot set {self.line}: {text}") from None
        finally:
            port.close()
