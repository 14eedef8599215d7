"""An emulated PRI failover card on USB, as a pyusb backend: the Rhino card
(vendor control requests, per the RHINO* keys) or a USB HID relay board
(16c0:05df), for the unit tests and the lab.

asha.rhino loads it through its test seam, ASHA_USB_BACKEND=asha_lab.usbemu:get_backend;
the backend finds its devices in the files named by ASHA_USBEMU (colon
separated), one JSON file per device holding its description, the relay state,
whether the card has power, test hooks (a card that hangs, a device that refuses
access) and a log of every switch with its time. Every process that uses the
backend (asha-rhino runs, asha-hb in a lab node, the test itself) sees the same
device. Like the real card, which is powered from the primary, a card without
power has its relay at rest, IN-NC (the standby), and answers nothing."""

import array
import errno
import fcntl
import json
import os
import time

import usb.backend
import usb.core

ENV = "ASHA_USBEMU"
BACKEND_SPEC = "asha_lab.usbemu:get_backend"
LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The USB HID relay boards (V-USB firmware, "USBRelay1".."USBRelay8" from
# www.dcttech.com). What this emulates is what the open-source drivers rely on,
# read from pavel-a/usb-relay-hid (lib/usb_relay_lib.c: rel_onoff() and
# rel_read_status_raw(); commandline/hiddata_libusb01.c: usbhidSetReport() and
# usbhidGetReport()) and darrylb123/usbrelay (libusbrelay.c, libusbrelay.h):
#   - both directions are HID class requests on endpoint 0 for FEATURE report 0:
#     SET_REPORT = bmRequestType 0x20 (class, device, out), bRequest 0x09,
#     wValue 0x0300; GET_REPORT = 0xa0, bRequest 0x01, wValue 0x0300; 8 data bytes;
#   - SET_REPORT data [0xff, n, 0...] turns relay n (1..8) on (NO contact closed),
#     [0xfd, n, 0...] off (back to NC); 0xfe / 0xfc all on / all off; 0xfa sets
#     the 5-character board id;
#   - GET_REPORT answers the board id in bytes 0-4, 0 in byte 5, and the relay
#     bitmask (bit 0 = relay 1) in byte 7;
#   - the relays are not remembered without power: they come up off.
HID_VENDOR, HID_PRODUCT = 0x16C0, 0x05DF
HID_SET_REPORT, HID_GET_REPORT = 0x09, 0x01
HID_FEATURE_REPORT_0 = 0x0300
HID_ON, HID_OFF, HID_ALL_ON, HID_ALL_OFF, HID_SET_ID = 0xFF, 0xFD, 0xFE, 0xFC, 0xFA

GET_DESCRIPTOR = 0x06
DESC_DEVICE, DESC_CONFIG, DESC_STRING = 1, 2, 3
LANGID_EN_US = 0x0409

# What pyusb's libusb1 backend raises for the same conditions (usb/backend/libusb1.py).
_ERRORS = {
    "access": ("Access denied (insufficient permissions)", -3, errno.EACCES),
    "nodev": ("No such device (it may have been disconnected)", -4, errno.ENODEV),
    "timeout": ("Operation timed out", -7, errno.ETIMEDOUT),
    "pipe": ("Pipe error", -9, errno.EPIPE),
}


def _error(kind):
    text, code, err = _ERRORS[kind]
    cls = usb.core.USBTimeoutError if kind == "timeout" else usb.core.USBError
    return cls(text, code, err)


def rhino_fields(vendor=0x0A8A, product=0x0501, reqtype=0x40, request=0x01, val_primary=0x0001,
                 val_standby=0x0000, getrequest=0x02, readback=True, power_on="primary"):
    """A Rhino card answering the given control requests (the RHINO* keys).

    power_on: where the relay goes when the card gets power back. SARK's notes
    say power on bridges IN-NO, the primary."""
    return {"kind": "rhino", "vendor": vendor, "product": product, "reqtype": reqtype,
            "request": request, "val_primary": val_primary, "val_standby": val_standby,
            "getrequest": getrequest, "readback": readback,
            "power_on_state": val_primary if power_on == "primary" else val_standby,
            "manufacturer": "asha lab", "product_name": "emulated Rhino PRI failover card",
            "state": val_primary if power_on == "primary" else val_standby}


def hidrelay_fields(relays=2, board_id="ASHA1", relay=1, product_name=None):
    """A USB HID relay board with relays relays; relay is the one wired to the PRI
    (only used to name the position in the switch log)."""
    return {"kind": "hidrelay", "vendor": HID_VENDOR, "product": HID_PRODUCT, "relays": relays,
            "board_id": board_id, "relay": relay, "manufacturer": "www.dcttech.com",
            "product_name": product_name or f"USBRelay{relays}", "power_on_state": 0, "state": 0}


class Card:
    """One emulated device file: create it, read it, and the test hooks."""

    def __init__(self, path):
        self.path = str(path)

    @classmethod
    def create(cls, path, fields):
        card = cls(path)
        data = dict(fields, powered=True, hang=0.0, hang_mode="timeout", deny=False,
                    switches=[], commands=0)
        _write(card.path, data)
        return card

    def read(self):
        with open(self.path) as f:
            return json.load(f)

    def update(self, **fields):
        with _locked(self.path):
            data = self.read()
            data.update(fields)
            _write(self.path, data)

    # the relay, as a person would look at it -------------------------------------
    def position(self):
        return position_of(self.read())

    def switches(self):
        """[{"t": epoch, "position": ..., "state": ..., "cause": ...}, ...] in order."""
        return self.read()["switches"]

    # test hooks ----------------------------------------------------------------
    def power_off(self):
        """The card loses power (its node does): the relay falls to NC, the device is gone."""
        _set_power(self.path, False)

    def power_on(self):
        _set_power(self.path, True)

    def hang(self, seconds, mode="timeout"):
        """Each control transfer stalls for seconds: mode "timeout" honours the
        transfer's timeout as libusb does (then USBTimeoutError); "stuck" ignores
        it, like a call blocked in the kernel."""
        self.update(hang=float(seconds), hang_mode=mode)

    def deny(self, on=True):
        """Opening the device fails with EACCES, as without permission on /dev/bus/usb."""
        self.update(deny=bool(on))

    def env(self, others=()):
        """Environment that makes asha.rhino (in this or any process) use this card."""
        paths = [self.path] + [c.path for c in others]
        pythonpath = os.environ.get("PYTHONPATH", "")
        return {"ASHA_USB_BACKEND": BACKEND_SPEC, ENV: ":".join(paths),
                "PYTHONPATH": LAB_DIR + (":" + pythonpath if pythonpath else "")}


def position_of(data):
    state = data["state"]
    if data["kind"] == "rhino":
        if state == data["val_primary"]:
            return "primary"
        if state == data["val_standby"]:
            return "standby"
        return f"unknown ({state:#06x})"
    return "primary" if state & (1 << (data["relay"] - 1)) else "standby"


# ---------------------------------------------------------------------------
# The files.

class _locked:
    """flock on path.lock around a read-modify-write of the device file."""

    def __init__(self, path):
        self.lock = path + ".lock"

    def __enter__(self):
        self.fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        os.close(self.fd)


def _write(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o666)
    os.replace(tmp, path)


def _switch(data, state, cause):
    """Set the relay state in data, logging the switch when it changes."""
    if state != data["state"]:
        data["state"] = state
        data["switches"].append({"t": time.time(), "state": state, "position": position_of(data),
                                 "cause": cause, "pid": os.getpid()})


def _set_power(path, on):
    with _locked(path):
        with open(path) as f:
            data = json.load(f)
        if data["powered"] == on:
            return
        data["powered"] = on
        rest = data["val_standby"] if data["kind"] == "rhino" else 0
        _switch(data, data["power_on_state"] if on else rest, "power on" if on else "power off")
        _write(path, data)


# ---------------------------------------------------------------------------
# The pyusb backend.

class _Descriptor:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class _DeviceId:
    def __init__(self, path, address):
        self.path, self.address = path, address


class _Handle:
    def __init__(self, dev):
        self.dev = dev
        self.closed = False


class Backend(usb.backend.IBackend):
    """Enough of pyusb's IBackend for usb.core.find(), strings and ctrl_transfer()."""

    def __init__(self, paths=None):
        super().__init__()
        self._paths = paths

    def _files(self):
        paths = self._paths if self._paths is not None else \
            [p for p in os.environ.get(ENV, "").split(":") if p]
        return paths

    @staticmethod
    def _load(path):
        with open(path) as f:
            return json.load(f)

    def enumerate_devices(self):
        for i, path in enumerate(self._files()):
            try:
                data = self._load(path)
            except FileNotFoundError:
                continue
            if data["powered"]:
                yield _DeviceId(path, i + 2)

    def get_device_descriptor(self, dev):
        data = self._load(dev.path)
        return _Descriptor(bLength=18, bDescriptorType=DESC_DEVICE, bcdUSB=0x0110,
                           bDeviceClass=0, bDeviceSubClass=0, bDeviceProtocol=0,
                           bMaxPacketSize0=8, idVendor=data["vendor"], idProduct=data["product"],
                           bcdDevice=0x0100, iManufacturer=1, iProduct=2, iSerialNumber=0,
                           bNumConfigurations=1, address=dev.address, bus=1, port_number=None,
                           port_numbers=None, speed=1)

    def get_configuration_descriptor(self, dev, config):
        return _Descriptor(bLength=9, bDescriptorType=DESC_CONFIG, wTotalLength=34,
                           bNumInterfaces=1, bConfigurationValue=1, iConfiguration=0,
                           bmAttributes=0x80, bMaxPower=50, extra_descriptors=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        hid = self._load(dev.path)["kind"] == "hidrelay"
        return _Descriptor(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                           bNumEndpoints=1 if hid else 0, bInterfaceClass=3 if hid else 0xFF,
                           bInterfaceSubClass=0, bInterfaceProtocol=0, iInterface=0,
                           extra_descriptors=[])

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        return _Descriptor(bLength=7, bDescriptorType=5, bEndpointAddress=0x81, bmAttributes=3,
                           wMaxPacketSize=8, bInterval=20, bRefresh=0, bSynchAddress=0,
                           extra_descriptors=[])

    def open_device(self, dev):
        data = self._load(dev.path)
        if not data["powered"]:
            raise _error("nodev")
        if data["deny"]:
            raise _error("access")
        return _Handle(dev)

    def close_device(self, dev_handle):
        dev_handle.closed = True

    def set_configuration(self, dev_handle, config_value):
        pass

    def get_configuration(self, dev_handle):
        return 1

    def claim_interface(self, dev_handle, intf):
        pass

    def release_interface(self, dev_handle, intf):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        path = dev_handle.dev.path
        first = self._load(path)
        if not first["powered"]:
            raise _error("nodev")
        if first["hang"] > 0:
            limit = (timeout or 0) / 1000.0
            if first["hang_mode"] == "timeout" and limit and first["hang"] > limit:
                time.sleep(limit)
                raise _error("timeout")
            time.sleep(first["hang"])
        with _locked(path):
            card = self._load(path)
            if not card["powered"]:
                raise _error("nodev")
            card["commands"] += 1
            answer = self._answer(card, bmRequestType, bRequest, wValue, wIndex, data)
            _write(path, card)
        if bmRequestType & 0x80:
            n = min(len(answer), len(data))
            data[:n] = array.array("B", answer[:n])
            return n
        return len(data)

    def _answer(self, card, rtype, req, value, index, data):
        """Apply one control request to card (a dict); return the IN data (bytes)."""
        if rtype == 0x80 and req == GET_DESCRIPTOR:
            return self._descriptor(card, value)
        if card["kind"] == "rhino":
            return self._rhino(card, rtype, req, value)
        return self._hidrelay(card, rtype, req, value, bytes(data))

    @staticmethod
    def _descriptor(card, value):
        kind, index = value >> 8, value & 0xFF
        if kind != DESC_STRING:
            raise _error("pipe")
        if index == 0:
            return bytes([4, DESC_STRING]) + LANGID_EN_US.to_bytes(2, "little")
        strings = {1: card["manufacturer"], 2: card["product_name"]}
        if index not in strings:
            raise _error("pipe")
        text = strings[index].encode("utf-16-le")
        return bytes([2 + len(text), DESC_STRING]) + text

    @staticmethod
    def _rhino(card, rtype, req, value):
        if rtype == card["reqtype"] and req == card["request"]:
            if value not in (card["val_primary"], card["val_standby"]):
                raise _error("pipe")
            _switch(card, value, "command")
            return b""
        if card["readback"] and rtype == card["reqtype"] | 0x80 and req == card["getrequest"]:
            return card["state"].to_bytes(2, "little")
        raise _error("pipe")                 # a request the card does not know: it stalls

    @staticmethod
    def _hidrelay(card, rtype, req, value, payload):
        if value != HID_FEATURE_REPORT_0:
            raise _error("pipe")
        if rtype & 0x7F in (0x20, 0x21) and not rtype & 0x80 and req == HID_SET_REPORT:
            cmd, n = (payload + b"\0\0")[:2]
            every = (1 << card["relays"]) - 1
            if cmd == HID_ON and 1 <= n <= card["relays"]:
                _switch(card, card["state"] | 1 << (n - 1), "command")
            elif cmd == HID_OFF and 1 <= n <= card["relays"]:
                _switch(card, card["state"] & ~(1 << (n - 1)), "command")
            elif cmd == HID_ALL_ON:
                _switch(card, every, "command")
            elif cmd == HID_ALL_OFF:
                _switch(card, 0, "command")
            elif cmd == HID_SET_ID:
                card["board_id"] = payload[1:6].decode("ascii", "replace")
            return b""
        if rtype & 0x7F in (0x20, 0x21) and rtype & 0x80 and req == HID_GET_REPORT:
            board_id = card["board_id"].encode("ascii")[:5].ljust(5, b"\0")
            return board_id + bytes([0, 0, card["state"]])
        raise _error("pipe")


def get_backend(paths=None):
    """The backend over the device files in ASHA_USBEMU (or paths)."""
    return Backend(paths)
