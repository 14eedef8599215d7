"""The common USB HID relay boards (V-USB firmware, USB id 16c0:05df, product
string USBRelay1 to USBRelay8), whose protocol is public.

Both requests are HID class requests to the device on endpoint 0, as the
libusb code of pavel-a/usb-relay-hid sends them (commandline/hiddata_libusb01.c,
lib/usb_relay_lib.c; darrylb123/usbrelay's libusbrelay.c agrees on the bytes):
SET_REPORT of feature report 0 with 8 bytes [0xff, relay, 0...] closes the
relay's NO contact, [0xfd, relay, 0...] lets it fall back to NC; GET_REPORT of
feature report 0 answers the board's 5-character id in bytes 0-4 and the relay
bitmask (bit 0 = relay 1) in byte 7. Addressing the device rather than the
interface leaves the kernel's usbhid driver bound. A relay is on (IN-NO, the
primary) only while the board is powered and told so."""

import re

from . import PRIMARY, STANDBY, DeviceError, Driver, usbdev

VENDOR, PRODUCT = 0x16C0, 0x05DF
SET_REPORT, GET_REPORT = 0x09, 0x01
OUT_CLASS_DEVICE, IN_CLASS_DEVICE = 0x20, 0xA0
FEATURE_REPORT_0 = 0x0300
RELAY_ON, RELAY_OFF = 0xFF, 0xFD
PRODUCT_NAME = re.compile(r"USBRelay([1-8])")


class HidRelay(Driver):

    def __init__(self, cfg):
        self.relay = cfg.RHINORELAY

    def describe(self):
        return f"USB HID relay board {usbdev.ids(VENDOR, PRODUCT)}"

    def _board(self, timer):
        """(device, board id, number of relays) of the one relay board."""
        found = usbdev.find_all(VENDOR, PRODUCT, self.describe())
        if not found:
            raise DeviceError(f"no {self.describe()} found")
        boards, others = [], []
        for dev in found:
            name = usbdev.string(dev, dev.iProduct, self.describe(), timer) if dev.iProduct else ""
            m = PRODUCT_NAME.fullmatch(name or "")
            if m:
                boards.append((dev, int(m.group(1))))
            else:
                others.append(name or "a device without a product name")
                usbdev.release(dev)
        if not boards:
            raise DeviceError(f"USB device {usbdev.ids(VENDOR, PRODUCT)} is {others[0]!r}, not a "
                              f"USB HID relay board (USBRelay1 to USBRelay8)", retry=False)
        if len(boards) > 1:
            names = ", ".join(self._report(dev, timer)[0] for dev, _ in boards)
            for dev, _ in boards:
                usbdev.release(dev)
            raise DeviceError(f"{len(boards)} USB HID relay boards found (ids {names}); "
                              f"asha-rhino drives one: unplug the others", retry=False)
        dev, count = boards[0]
        if self.relay > count:
            usbdev.release(dev)
            raise DeviceError(f"RHINORELAY={self.relay}, but the board (USBRelay{count}) has "
                              f"{count} relay{'s' if count > 1 else ''}", retry=False)
        return dev

    def _report(self, dev, timer):
        """(board id, relay bitmask) from feature report 0."""
        data = bytes(usbdev.ctrl(dev, self.describe(), timer, IN_CLASS_DEVICE, GET_REPORT,
                                 FEATURE_REPORT_0, 0, 8))
        if len(data) < 8:
            raise DeviceError(f"{self.describe()}: a short report ({len(data)} bytes, not 8)")
        return data[:5].rstrip(b"\0").decode("ascii", "replace"), data[7]

    def set(self, position, timer):
        dev = self._board(timer)
        command = RELAY_ON if position == PRIMARY else RELAY_OFF
        try:
            usbdev.ctrl(dev, self.describe(), timer, OUT_CLASS_DEVICE, SET_REPORT,
                        FEATURE_REPORT_0, 0, bytes([command, self.relay, 0, 0, 0, 0, 0, 0]))
        finally:
            usbdev.release(dev)

    def read(self, timer):
        dev = self._board(timer)
        try:
            _, mask = self._report(dev, timer)
        finally:
            usbdev.release(dev)
        return PRIMARY if mask & (1 << (self.relay - 1)) else STANDBY
