"""What every asha executable does around its own work: parse the command line
with docopt, load the configuration, log, and turn errors into exit statuses."""

import sys

from docopt import DocoptExit, docopt

from . import __version__, config, exits, log as logmod


def main(tool, doc, run, argv=None):
    """Parse argv against doc and call run(args); return the exit status.

    run returns an exit status (None is 0) or raises: ConfigError -> 78 with
    every error on its own line, AshaError -> its status with one line."""
    try:
        args = docopt(doc, argv, version=f"{tool} {__version__}")
    except DocoptExit as e:
        print(str(e).strip() or doc.strip(), file=sys.stderr)
        return exits.USAGE
    try:
        status = run(args)
        return exits.OK if status is None else status
    except config.ConfigError as e:
        for w in e.warnings:
            print(w, file=sys.stderr)
        for line in e.errors:
            print(line, file=sys.stderr)
        return exits.CONFIG
    except exits.AshaError as e:
        print(f"{tool}: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130


def load_config(args, tool, overrides=None):
    """Load the file named by -c/--config and print its warnings."""
    path = args.get("--config") or config.DEFAULT_PATH
    cfg = config.load(path, overrides)
    for w in cfg.warnings:
        print(w, file=sys.stderr)
    return cfg


def setup_log(tool, cfg=None, stderr=None, verbose=False):
    return logmod.setup(tool, stderr=stderr, verbose=verbose,
                        logfile=cfg.ASHALOG if cfg is not None else None)
