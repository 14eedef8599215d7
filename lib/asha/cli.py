"""What every asha executable does around its own work: parse the command line
with docopt, load the configuration, log, and turn errors into exit statuses."""

import re
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
        print(usage_message(tool, str(e), doc) or doc.strip(), file=sys.stderr)
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


def usage_message(tool, text, doc=""):
    """docopt's complaint as one line naming the tool, then the usage.

    docopt-ng words a stray argument as `Warning: found unmatched (duplicate?)
    arguments [Argument(None, 'x')]`, listing the good options of the line as
    well; a person should read `unexpected argument: x`."""
    first, _, rest = text.strip().partition("\n")
    if not first or first.startswith("Usage:"):
        return text.strip()
    m = re.fullmatch(r"Warning: found unmatched \(duplicate\?\) arguments (\[.*\])", first)
    if m:
        words = [w for w in _pattern_words(m.group(1))
                 if not (w.startswith("-") and re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", doc))]
        first = f"unexpected argument{'s' if len(words) > 1 else ''}: {' '.join(words)}" \
            if words else "unexpected arguments"
    return f"{tool}: {first}\n{rest}".strip()


def _pattern_words(reprs):
    """['x', '--force'] from docopt's "[Argument(None, 'x'), Option(None, '--force', 0, True)]"."""
    import ast          # here, not at the top: only a bad command line needs it (10 ms)
    try:
        items = ast.literal_eval(re.sub(r"\b(Argument|Option|Command)\(", r"('\1', ", reprs))
    except (ValueError, SyntaxError):
        return []
    words = []
    for kind, *fields in items:
        if kind == "Option":
            words.append(fields[1] or fields[0])
        elif kind == "Argument":
            words.extend(fields[1] if isinstance(fields[1], list) else [str(fields[1])])
        else:
            words.append(str(fields[0]))
    return words


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
