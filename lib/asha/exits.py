"""Exit statuses of the asha tools, by name.

sysexits(3) where it fits (64 usage, 78 configuration), LSB and OCF codes for
the status queries, where "not running" is an answer and not a failure."""

OK = 0
FAIL = 1            # the action was tried and did not work
USAGE = 64          # EX_USAGE: bad command line
CONFIG = 78         # EX_CONFIG: bad configuration

LSB_NOT_RUNNING = 3  # status: the resource is not held / the daemon is not running
LSB_UNKNOWN = 4      # status: the state cannot be known (LSB "program or service status is unknown")

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7


class AshaError(Exception):
    """An error a tool reports as one line and an exit status."""

    status = FAIL

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(AshaError):
    status = USAGE
