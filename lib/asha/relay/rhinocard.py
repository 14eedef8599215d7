"""The Rhino PRI failover card over USB.

Its command set is not public. What this driver sends is whatever the
RHINO* keys say: the switch is one control request (RHINOREQTYPE, RHINOREQUEST,
wValue RHINOVALPRIMARY or RHINOVALSTANDBY, wIndex 0, no data), and with
RHINOREADBACK=YES the position is read back with RHINOREQTYPE plus 0x80 (device
to host), RHINOGETREQUEST, wValue 0, two bytes least significant first holding
the wValue the relay is at. The keys' defaults are placeholders, not the
vendor's values."""

from . import PRIMARY, STANDBY, DeviceError, Driver, UnknownPosition, config_error, usbdev


class RhinoCard(Driver):

    def __init__(self, cfg):
        self.vendor, self.product = cfg.RHINOVENDOR, cfg.RHINOPRODUCT
        self.reqtype, self.request = cfg.RHINOREQTYPE, cfg.RHINOREQUEST
        self.values = {PRIMARY: cfg.RHINOVALPRIMARY, STANDBY: cfg.RHINOVALSTANDBY}
        self.getrequest = cfg.RHINOGETREQUEST
        self.readable = cfg.RHINOREADBACK
        self.why_unreadable = "RHINOREADBACK=NO: the card cannot be read back"
        if self.values[PRIMARY] == self.values[STANDBY]:
            raise config_error(cfg, "RHINOVALSTANDBY",
                               f"RHINOVALSTANDBY must differ from RHINOVALPRIMARY, "
                               f"not {self.values[STANDBY]:#06x}")

    def describe(self):
        return f"USB device {usbdev.ids(self.vendor, self.product)} (RHINOVENDOR/RHINOPRODUCT)"

    def _device(self):
        found = usbdev.find_all(self.vendor, self.product, self.describe())
        if not found:
            raise DeviceError(f"no {self.describe()} found")
        if len(found) > 1:
            places = ", ".join(usbdev.where(d) for d in found)
            raise DeviceError(f"{len(found)} of {self.describe()} found ({places}); "
                              f"asha-rhino drives one card", retry=False)
        return found[0]

    def set(self, position, timer):
        dev = self._device()
        try:
            usbdev.ctrl(dev, self.describe(), timer, self.reqtype, self.request,
                        self.values[position], 0, None)
        finally:
            usbdev.release(dev)

    def read(self, timer):
        dev = self._device()
        try:
            data = usbdev.ctrl(dev, self.describe(), timer, self.reqtype | 0x80,
                               self.getrequest, 0, 0, 2)
        finally:
            usbdev.release(dev)
        if len(data) == 0:
            raise UnknownPosition(f"{self.describe()}: answered RHINOGETREQUEST "
                                  f"{self.getrequest:#04x} with no data")
        value = int.from_bytes(bytes(data), "little")
        for position, v in self.values.items():
            if value == v:
                return position
        raise UnknownPosition(f"{self.describe()}: the card is at wValue {value:#06x}, neither "
                              f"RHINOVALPRIMARY ({self.values[PRIMARY]:#06x}) nor RHINOVALSTANDBY "
                              f"({self.values[STANDBY]:#06x})")
