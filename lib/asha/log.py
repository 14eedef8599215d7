"""Logging for the asha tools: syslog (facility daemon, ident = the tool) always,
stderr as well when a person runs the tool, and ASHALOG when it is set.

One line per event, naming what it is about; timestamps carry milliseconds so
that a failover can be timed from the log alone."""

import logging
import os
import sys
import time

_FMT_FILE = "%(asctime)s.%(msecs)03d %(name)s[%(process)d]: %(levelname)s: %(message)s"
_FMT_STDERR = "%(name)s: %(message)s"


class _MsFormatter(logging.Formatter):
    converter = time.localtime

    def formatTime(self, record, datefmt=None):
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))


def setup(tool, stderr=None, verbose=False, logfile=None, syslog=True):
    """Configure and return the logger of tool.

    stderr: None means "when standard error is a terminal"."""
    log = logging.getLogger(tool)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    if stderr is None:
        stderr = sys.stderr.isatty()
    if stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(_FMT_STDERR))
        log.addHandler(h)
    if logfile:
        try:
            h = logging.FileHandler(logfile)
        except OSError as e:
            print(f"{tool}: cannot open log file {logfile}: {e.strerror}", file=sys.stderr)
        else:
            h.setFormatter(_MsFormatter(_FMT_FILE))
            log.addHandler(h)
    if syslog and os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler  # here, not at the top: only for syslog (4 ms)
        try:
            h = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_DAEMON)
        except OSError:
            pass
        else:
            h.ident = f"{tool}[{os.getpid()}]: "
            h.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(h)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def reopen_for_pid(log, tool):
    """After a fork the syslog ident must carry the new pid."""
    from logging.handlers import SysLogHandler
    for h in log.handlers:
        if isinstance(h, SysLogHandler):
            h.ident = f"{tool}[{os.getpid()}]: "
