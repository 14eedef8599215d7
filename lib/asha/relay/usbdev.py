"""What the two USB drivers share: finding devices through pyusb and turning
pyusb's errors into one line a person can act on."""

import errno

import usb.core
import usb.util

from . import DeviceError, usb_backend


def ids(vendor, product):
    return f"{vendor:04x}:{product:04x}"


def find_all(vendor, product, what):
    """Every device vendor:product; what names them in errors."""
    backend = usb_backend()
    try:
        return list(usb.core.find(find_all=True, idVendor=vendor, idProduct=product,
                                  backend=backend))
    except usb.core.NoBackendError:
        raise DeviceError("pyusb finds no USB library: install libusb-1.0-0", retry=False) \
            from None
    except usb.core.USBError as e:
        raise error(e, what) from None


def error(e, what, timer=None):
    """A DeviceError for the pyusb error e while talking to what."""
    code = getattr(e, "errno", None)
    if isinstance(e, usb.core.USBTimeoutError) or code == errno.ETIMEDOUT:
        within = f" within {timer.per_transfer:g} s (RHINOTIMEOUT)" if timer else ""
        return DeviceError(f"{what}: no answer{within}")
    if code in (errno.EACCES, errno.EPERM):
        return DeviceError(f"{what}: permission denied (run as root, or give the device to "
                           f"asha's user with a udev rule)", retry=False)
    if code == errno.ENODEV:
        return DeviceError(f"{what}: gone (unplugged, or without power)")
    if code == errno.EPIPE:
        return DeviceError(f"{what}: the device refused the request (it stalled)")
    return DeviceError(f"{what}: {getattr(e, 'strerror', None) or e}")


def ctrl(dev, what, timer, bmRequestType, bRequest, wValue, wIndex, data_or_length):
    try:
        return dev.ctrl_transfer(bmRequestType, bRequest, wValue, wIndex, data_or_length,
                                 timeout=timer.ms())
    except usb.core.USBError as e:
        raise error(e, what, timer) from None


def string(dev, index, what, timer):
    dev.default_timeout = timer.ms()
    try:
        return usb.util.get_string(dev, index)
    except usb.core.USBError as e:
        raise error(e, what, timer) from None
    except ValueError as e:              # no language ids: a device that gives no strings
        raise DeviceError(f"{what}: {e}") from None


def release(dev):
    try:
        usb.util.dispose_resources(dev)
    except usb.core.USBError:
        pass


def where(dev):
    return f"bus {dev.bus} address {dev.address}"
