"""`make install` into a DESTDIR: the tree an administrator gets, checked file by
file against the checkout, then the installed tools run as they will on a node.

The tools are run at their real paths (PREFIX=/opt/asha) in a private mount
namespace where DESTDIR/opt/asha is bound on /opt/asha and the checkout's lib/
is hidden under an empty tmpfs, from cwd / with an empty environment: they can
only work from the installed library. The namespace, and its mounts, go with
the process. make uninstall then removes all of it but /etc/asha.conf."""

import os
import shlex
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from asha import __version__

REPO = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "configs"
PREFIX = "/opt/asha"
PYTHON = str(REPO / ".venv" / "bin" / "python")
UNITDIR = "/etc/systemd/system"        # PREFIX is neither /usr nor /usr/local


def sources():
    """What make install takes from the checkout, listed at the time it runs
    (other work may add a man page while the suite runs)."""
    return SimpleNamespace(
        tools=sorted(p.name for p in (REPO / "bin").glob("asha-*")),
        lib_files=sorted(str(p.relative_to(REPO / "lib")) for p in (REPO / "lib/asha").rglob("*.py")
                         if "__pycache__" not in p.parts),
        man_pages=sorted((REPO / "man").glob("*.[1-8]")),
        units=sorted(p.name for p in (REPO / "systemd").iterdir()
                     if p.suffix in (".service", ".timer")))


def make(*args, destdir, python=PYTHON, readonly=False, prefix=PREFIX):
    """make ARGS with DESTDIR, PREFIX, PYTHON; readonly: in a private mount
    namespace where the checkout is mounted read-only, so that make fails on any
    attempt to write in it."""
    argv = ["make", "--no-print-directory", "-C", str(REPO), *args,
            f"DESTDIR={destdir}", f"PREFIX={prefix}", f"PYTHON={python}"]
    if readonly:
        repo = shlex.quote(str(REPO))
        argv = [*unshare(), "sh", "-c", f'set -e; mount --bind {repo} {repo}; '
                f'mount -o remount,bind,ro {repo}; exec "$@"', "sh", *argv]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})
    assert p.returncode == 0, f"make {' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def unshare():
    """The command that runs its argument in a private mount namespace."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv[1:1] = ["--user", "--map-root-user"]
    return argv


def files_under(top):
    return sorted(str(p.relative_to(top)) for p in Path(top).rglob("*") if not p.is_dir())


def docopt_source():
    """The directory of the venv's docopt-ng package, and the names of its licence files."""
    out = subprocess.run(
        [PYTHON, "-c", "import docopt, importlib.metadata as m; print(docopt.__file__); "
         "print(*(f.name for f in m.distribution('docopt-ng').files "
         "if f.name.startswith(('LICENSE', 'COPYING'))))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    return Path(out[0]).parent, out[1].split()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """DESTDIR, make's output, the installed files before any tool ran, and the
    checkout's files that were installed.

    Installed from a read-only checkout: make install writes nothing in it (no
    build/, no __pycache__, no edited copy of a script)."""
    destdir = tmp_path_factory.mktemp("destdir")
    src = sources()
    p = make("install", destdir=destdir, readonly=True)
    # the tree as make left it, before an installed tool has run (and written __pycache__)
    return SimpleNamespace(destdir=destdir, out=p, tree=files_under(destdir), src=src)


def test_installed_tree_is_exactly_what_install_promises(installed):
    destdir, tree, src = installed.destdir, installed.tree, installed.src
    docopt_dir, licences = docopt_source()
    assert licences, "docopt-ng's licence file is not in its metadata"
    docopt_files = sorted(p.name for p in docopt_dir.glob("*.py"))
    expected = (
        [f"opt/asha/sbin/{t}" for t in src.tools]
        + [f"opt/asha/lib/asha/{f}" for f in src.lib_files]
        + [f"opt/asha/lib/asha/docopt/{f}" for f in docopt_files]
        + [f"opt/asha/share/man/man{p.suffix[1:]}/{p.name}" for p in src.man_pages]
        + [f"opt/asha/share/doc/asha/docopt-ng.{name}" for name in licences]
        + ["opt/asha/share/doc/asha/asha.conf.example", "opt/asha/share/asha/inittab",
           "etc/cron.d/asha"]
        + [f"{UNITDIR[1:]}/{u}" for u in src.units])
    assert tree == sorted(expected)
    assert not [f for f in tree if "__pycache__" in f or f.endswith(".pyc")]
    assert not (destdir / "etc" / "asha.conf").exists(), "make install must not write /etc/asha.conf"


def test_every_tool_and_asha_conf_have_a_page():
    src = sources()
    sections = {p.suffix for p in src.man_pages}
    assert {".5", ".8"} <= sections, sections
    assert {"asha.conf.5", *(f"{t}.8" for t in src.tools)} <= {p.name for p in src.man_pages}


def test_library_example_and_pages_are_copied_unchanged(installed):
    destdir, src = installed.destdir, installed.src
    for f in src.lib_files:
        assert (destdir / "opt/asha/lib/asha" / f).read_bytes() == (REPO / "lib" / f).read_bytes(), f
    for module in docopt_source()[0].glob("*.py"):
        assert (destdir / "opt/asha/lib/asha/docopt" / module.name).read_bytes() == module.read_bytes()
    for page in src.man_pages:
        installed_page = destdir / f"opt/asha/share/man/man{page.suffix[1:]}" / page.name
        assert installed_page.read_bytes() == page.read_bytes(), page.name
    assert (destdir / "opt/asha/share/doc/asha/asha.conf.example").read_bytes() == \
        (REPO / "asha.conf.example").read_bytes()


def test_tools_get_the_interpreter_and_the_library_path(installed):
    destdir, src = installed.destdir, installed.src
    for tool in src.tools:
        path = destdir / "opt/asha/sbin" / tool
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, tool
        orig = (REPO / "bin" / tool).read_text().splitlines()
        got = path.read_text().splitlines()
        assert got[0] == f"#!{PYTHON}", tool
        i = orig.index("import sys")
        # the docstring (docopt's usage) and the rest are untouched; one line more, right after
        # `import sys`, before the first import of asha
        assert got[1:i + 1] == orig[1:i + 1] and got[i + 2:] == orig[i + 1:], tool
        assert got[i + 1].startswith(f'sys.path.insert(0, "{PREFIX}/lib/asha")'), got[i + 1]
        assert i + 1 < min(n for n, line in enumerate(got) if "asha" in line.split("#")[0]
                           and line.startswith(("import ", "from "))), tool


def test_cron_units_and_inittab_name_the_installed_tools(installed):
    destdir, src = installed.destdir, installed.src
    sbin = f"{PREFIX}/sbin/"
    cron = (destdir / "etc/cron.d/asha").read_text()
    assert cron == (REPO / "cron.d/asha").read_text().replace("/usr/sbin/", sbin)
    assert f"root  {sbin}asha-sync --cron" in cron
    assert stat.S_IMODE((destdir / "etc/cron.d/asha").stat().st_mode) == 0o644   # cron skips writable ones
    for unit in src.units:
        text = (destdir / UNITDIR[1:] / unit).read_text()
        assert text == (REPO / "systemd" / unit).read_text().replace("/usr/sbin/", sbin), unit
        assert "/usr/sbin" not in text
    execs = {u: [line.split("=", 1)[1] for line in (destdir / UNITDIR[1:] / u).read_text().splitlines()
                 if line.startswith("ExecStart=")] for u in src.units if u.endswith(".service")}
    assert execs == {"asha-hb.service": [f"{sbin}asha-hb run"],
                     "asha-watchdog.service": [f"{sbin}asha-watchdog"],
                     "asha-sync.service": [f"{sbin}asha-sync --cron"]}
    inittab = (destdir / "opt/asha/share/asha/inittab").read_text()
    assert [line for line in inittab.splitlines() if line and not line.startswith("#")] == \
        [f"ha:2345:respawn:{sbin}asha-hb run", f"aw:2345:respawn:{sbin}asha-watchdog"]
    assert f"cat {PREFIX}/share/asha/inittab >> /etc/inittab" in inittab
    assert "telinit q" in inittab


def test_install_says_nothing_about_modules_the_interpreter_has(installed):
    p, src = installed.out, installed.src
    assert "cannot import" not in p.stdout + p.stderr
    assert f"installed {' '.join(src.tools)} in " in p.stdout
    assert f"next: /etc/asha.conf from {PREFIX}/share/doc/asha/asha.conf.example" in p.stdout


def test_install_names_in_one_line_the_modules_the_interpreter_lacks(tmp_path):
    fake = tmp_path / "python-without-usb"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *"import usb"*) exit 1;; esac\nexec {PYTHON} "$@"\n')
    fake.chmod(0o755)
    p = make("install", destdir=tmp_path / "root", python=fake)
    notes = [line for line in p.stderr.splitlines() if "cannot import" in line]
    assert notes == [f"note: {fake} cannot import usb; apt-get install python3-usb"], p.stderr
    assert (tmp_path / "root/opt/asha/sbin/asha-hb").read_text().startswith(f"#!{fake}\n")


@pytest.mark.parametrize("prefix, unitdir", [("/usr/local", "usr/local/lib/systemd/system"),
                                             ("/usr", "usr/lib/systemd/system")])
def test_units_go_where_systemd_reads_them(tmp_path, prefix, unitdir):
    make("install", destdir=tmp_path, prefix=prefix)
    assert sorted(p.name for p in (tmp_path / unitdir).iterdir()) == sources().units
    assert not (tmp_path / "etc/systemd").exists()
    cron = (tmp_path / "etc/cron.d/asha").read_text()
    assert f"root  {prefix}/sbin/asha-sync --cron\n" in cron
    if prefix == "/usr":
        assert cron == (REPO / "cron.d/asha").read_text()
    inittab = (tmp_path / prefix[1:] / "share/asha/inittab").read_text()
    assert f"\nha:2345:respawn:{prefix}/sbin/asha-hb run\n" in inittab
    assert f"cat {prefix}/share/asha/inittab >> /etc/inittab" in inittab
    assert (tmp_path / prefix[1:] / "sbin/asha-hb").read_text().count(f'"{prefix}/lib/asha"') == 1


def test_install_keeps_asha_conf_and_uninstall_removes_the_rest(tmp_path):
    conf = tmp_path / "etc" / "asha.conf"
    conf.parent.mkdir()
    conf.write_text("HACLUSTERIP=192.168.1.100/24\nHAPRINODE=pbx1\nHASECNODE=pbx2\n")
    for _ in range(2):                          # a second install over the first is an upgrade
        p = make("install", destdir=tmp_path)
    assert "next:" not in p.stdout             # the hint is only for a node without asha.conf
    assert conf.read_text() == "HACLUSTERIP=192.168.1.100/24\nHAPRINODE=pbx1\nHASECNODE=pbx2\n"
    assert len(files_under(tmp_path)) > 40
    make("uninstall", destdir=tmp_path)
    assert files_under(tmp_path) == ["etc/asha.conf"]


# ---------------------------------------------------------------------------
# The installed tools, run where they would run on a node.

def on_node(destdir, argv, **kw):
    """Run argv in a private mount namespace with DESTDIR/opt/asha at /opt/asha,
    the checkout's lib/ hidden, cwd /, and nothing in the environment but PATH."""
    real = os.path.realpath(PYTHON)
    assert not real.startswith("/opt/"), f"{real}: the test hides /opt, where this interpreter is"
    script = ('set -e; mount -t tmpfs tmpfs /opt; mkdir /opt/asha; '
              f'mount --bind {shlex.quote(str(destdir))}/opt/asha /opt/asha; '
              f'mount -t tmpfs -o ro tmpfs {shlex.quote(str(REPO / "lib"))}; '
              'cd /; exec env -i PATH=/opt/asha/sbin:/usr/sbin:/usr/bin:/sbin:/bin "$@"')
    return subprocess.run([*unshare(), "sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=120, **kw)


def test_installed_tools_use_the_installed_library_only(installed):
    destdir, src = installed.destdir, installed.src
    # The checkout really is out of reach: the venv's editable install points into lib/.
    p = on_node(destdir, [PYTHON, "-c", "import asha"])
    assert p.returncode == 1 and "No module named 'asha'" in p.stderr, p.stderr
    # The installed script itself, run by its interpreter, puts the installed library first.
    probe = ("import runpy, sys\n"
             "sys.argv = ['asha-vip', '--version']\n"
             "try:\n"
             "    runpy.run_path('/opt/asha/sbin/asha-vip', run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    print('exit', e.code or 0)\n"
             "print(sys.modules['asha'].__file__)\n"
             "print(sys.modules['docopt'].__file__)\n")
    p = on_node(destdir, [PYTHON, "-c", probe])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"asha-vip {__version__}", "exit 0",
                                     "/opt/asha/lib/asha/asha/__init__.py",
                                     "/opt/asha/lib/asha/docopt/__init__.py"], p.stdout + p.stderr


def test_installed_vip_prints_its_usage(installed):
    destdir, src = installed.destdir, installed.src
    p = on_node(destdir, ["asha-vip", "--help"])
    assert (p.returncode, p.stderr) == (0, "")
    usage = (REPO / "bin" / "asha-vip").read_text().split('"""')[1].strip()
    assert p.stdout.strip() == usage


def test_installed_hb_check_refuses_a_bad_config_in_one_line(installed, tmp_path):
    destdir, src = installed.destdir, installed.src
    conf = tmp_path / "hasynch_lazzy.conf"
    conf.write_bytes((CONFIGS / "hasynch_lazzy.conf").read_bytes())
    p = on_node(destdir, ["asha-hb", "-c", str(conf), "check"])
    assert (p.returncode, p.stdout) == (78, "")
    assert p.stderr.splitlines() == [f"{conf}:5: HASYNCH must be LAZY or LOOSE, not 'lazzy'"]


def test_installed_sync_runs_from_the_example_config(installed, tmp_path):
    destdir, src = installed.destdir, installed.src
    rundir = tmp_path / "run"
    rundir.mkdir()
    conf = tmp_path / "asha.conf"
    conf.write_text((destdir / "opt/asha/share/doc/asha/asha.conf.example").read_text()
                    + f"HASYNCH=LOOSE\nASHARUNDIR={rundir}\n")
    p = on_node(destdir, ["asha-sync", "-c", str(conf)])
    assert (p.returncode, p.stdout, p.stderr) == (0, "skipped: HASYNCH=LOOSE: nothing is synced\n", "")
    p = on_node(destdir, ["asha-sync", "-c", str(conf), "--cron"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_installed_units_verify(installed):
    destdir, src = installed.destdir, installed.src
    # systemd-analyze also checks that each ExecStart= program exists at its real path.
    p = on_node(destdir, ["systemd-analyze", "verify", "--man=no",
                          *[str(destdir / UNITDIR[1:] / u) for u in src.units]])
    assert (p.returncode, p.stdout + p.stderr) == (0, "")
    for unit in src.units:
        for line in (destdir / UNITDIR[1:] / unit).read_text().splitlines():
            if line.startswith("Documentation="):
                for ref in line.split("=", 1)[1].split():
                    name, _, section = ref.removeprefix("man:").rstrip(")").partition("(")
                    assert (destdir / f"opt/asha/share/man/man{section}/{name}.{section}").exists(), \
                        f"{unit}: {ref} is not installed"


def test_inittab_and_cron_lines_are_the_ones_the_man_pages_quote():
    inittab = [line for line in (REPO / "inittab.d/asha").read_text().splitlines()
               if line and not line.startswith("#")]
    for line in inittab:
        tool = line.split(":", 3)[3].split()[0].rsplit("/", 1)[1]
        assert f".Dl {line}\n" in (REPO / "man" / f"{tool}.8").read_text(), line
    cron = [line for line in (REPO / "cron.d/asha").read_text().splitlines()
            if line.startswith("* ")]
    assert cron and all(f"\n{line}\n" in (REPO / "man/asha-sync.8").read_text() for line in cron)
