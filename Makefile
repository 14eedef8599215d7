# Developer commands. `make test` and `make demo` set up everything they need
# on a fresh Debian machine as root: apt packages, then a virtualenv in .venv.
# `make install` puts asha on a node (below).

# The interpreter of the tests, the lab and the benches: Debian's, the one
# `make install` writes into the tools' #! lines (PYTHON below), so that what
# is measured here is what runs on a node, whatever python3 is first on PATH.
VENV_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := iproute2 nftables rsync openssh-server openssh-client socat sqlite3 \
	mandoc kamailio python3-venv procps iputils-ping ethtool systemd
PY_PACKAGES := pyserial pyusb psutil docopt-ng pytest hypothesis

.PHONY: all test unit lab demo deps venv lint clean install uninstall

all: test

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.done: setup.py
	$(VENV_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q $(PY_PACKAGES)
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.done

test: deps venv
	@[ "$$(id -u)" = 0 ] || { echo "make test: the lab tests need root (network namespaces)"; exit 1; }
	$(VENV)/bin/pytest -q

demo: deps venv
	@[ "$$(id -u)" = 0 ] || { echo "make demo: the lab needs root (network namespaces)"; exit 1; }
	PYTHONPATH=lib:lab $(PY) -m asha_lab demo

unit: venv
	$(VENV)/bin/pytest -q tests/unit

lint:
	mandoc -Tlint -W warning man/*.[1-8]

clean:
	rm -rf $(VENV) build *.egg-info lib/*.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +

# make install [DESTDIR=staging] [PREFIX=/usr/local] [PYTHON=/usr/bin/python3]
#
# Where the files go, and why:
# - the tools in $(PREFIX)/sbin: they are run by root, from init, systemd and
#   cron. Each gets PYTHON in its #! line and the private library directory
#   put first on sys.path, so that it never needs PYTHONPATH.
# - the library in $(PREFIX)/lib/asha, private to the tools, as Debian keeps a
#   program's own modules out of dist-packages: lib/asha, and docopt-ng copied
#   from .venv, since Debian 12 has no package of it (python3-docopt is the
#   older docopt, which words its errors otherwise). pyserial, pyusb and
#   psutil come from the distribution (Debian: python3-serial python3-usb
#   python3-psutil; RHEL with EPEL: python3-pyserial python3-pyusb
#   python3-psutil); install says in one line which of them PYTHON lacks.
# - man pages in $(PREFIX)/share/man/man{5,7,8}; asha.conf.example in
#   $(PREFIX)/share/doc/asha. /etc/asha.conf is never written: the example's
#   addresses and node names are placeholders that a node must not run with.
# - /etc/cron.d/asha whatever PREFIX is: cron reads no other directory.
#   cron.d/asha is the job under cron; asha-sync.timer is the same job for
#   systemd. Enable one of them, not both (asha-sync locks, so both is harmless).
# - the systemd units in $(PREFIX)/lib/systemd/system for PREFIX /usr or
#   /usr/local (systemd reads both; /usr/local is the administrator's own),
#   otherwise in /etc/systemd/system (systemd reads no /opt). UNITDIR= moves
#   them. They are only installed: `systemctl enable --now asha-hb.service
#   asha-watchdog.service` starts them (asha(7) says in which order),
#   `systemctl daemon-reload` after an upgrade.
# - inittab.d/asha as $(PREFIX)/share/asha/inittab, for nodes with sysvinit:
#   appended to /etc/inittab by hand (its header says how), in place of the
#   units.
# In the cron file, the units and the inittab lines, /usr/sbin/ and
# /usr/share/asha/ become the real directories.
#
# make uninstall [DESTDIR=] [PREFIX=] removes what install wrote, never
# /etc/asha.conf.
PREFIX ?= /usr/local
PYTHON ?= /usr/bin/python3
SBINDIR = $(PREFIX)/sbin
LIBDIR = $(PREFIX)/lib/asha
MANDIR = $(PREFIX)/share/man
DOCDIR = $(PREFIX)/share/doc/asha
DATADIR = $(PREFIX)/share/asha
CRONDIR = /etc/cron.d
UNITDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib/systemd/system,/etc/systemd/system)

TOOLS := $(notdir $(wildcard bin/asha-*))
LIB_FILES := $(shell find lib/asha -name '*.py' -not -path '*/__pycache__/*' | sort)
MAN_PAGES := $(wildcard man/*.[1-8])
UNITS := $(notdir $(wildcard systemd/*.service systemd/*.timer))
# The modules asha needs from the distribution, and their Debian packages.
DIST_MODULES := serial:python3-serial usb:python3-usb psutil:python3-psutil
# $(call put_paths,SOURCE,DEST): SOURCE with the real directories, as DEST
# (mode 0644), renamed into place: cron and init never read half a file, and
# the tools are replaced the same way.
put_paths = sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/usr/share/asha/|$(DATADIR)/|g' $(1) > $(2).new \
	&& chmod 0644 $(2).new && mv -f $(2).new $(2)

install: | $(VENV)/.done
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(CRONDIR) $(DESTDIR)$(UNITDIR) \
		$(addprefix $(DESTDIR)$(MANDIR)/man,$(sort $(subst .,,$(suffix $(MAN_PAGES)))))
	@set -e; for t in $(TOOLS); do \
		sed -e '1s|^#!.*|#!$(PYTHON)|' \
		    -e 's|^import sys$$|&\nsys.path.insert(0, "$(LIBDIR)")  # the installed library first (make install)|' \
		    bin/$$t > $(DESTDIR)$(SBINDIR)/$$t.new; \
		grep -q '^sys.path.insert(0, "$(LIBDIR)")' $(DESTDIR)$(SBINDIR)/$$t.new \
			|| { rm -f $(DESTDIR)$(SBINDIR)/$$t.new; \
			     echo "bin/$$t: no 'import sys' line to put $(LIBDIR) on sys.path after" >&2; exit 1; }; \
		chmod 0755 $(DESTDIR)$(SBINDIR)/$$t.new; \
		mv -f $(DESTDIR)$(SBINDIR)/$$t.new $(DESTDIR)$(SBINDIR)/$$t; \
	done; echo "installed $(TOOLS) in $(DESTDIR)$(SBINDIR) (#!$(PYTHON))"
	@set -e; for f in $(patsubst lib/%,%,$(LIB_FILES)); do \
		install -d -m 0755 $(DESTDIR)$(LIBDIR)/$$(dirname $$f); \
		install -m 0644 lib/$$f $(DESTDIR)$(LIBDIR)/$$f; \
	done; \
	src=$$($(PY) -c 'import docopt; print(docopt.__file__)'); \
	case $$src in \
	*/__init__.py) install -d -m 0755 $(DESTDIR)$(LIBDIR)/docopt; \
		install -m 0644 $$(dirname $$src)/*.py $(DESTDIR)$(LIBDIR)/docopt/;; \
	*) install -m 0644 $$src $(DESTDIR)$(LIBDIR)/docopt.py;; \
	esac; \
	for l in $$($(PY) -c 'import importlib.metadata as m; print(*(f.locate() for f in m.distribution("docopt-ng").files if f.name.startswith(("LICENSE", "COPYING"))))'); do \
		install -m 0644 $$l $(DESTDIR)$(DOCDIR)/docopt-ng.$$(basename $$l); \
	done; \
	echo "installed the asha library and docopt-ng ($$($(PY) -c 'import importlib.metadata as m; print(m.version("docopt-ng"))')) in $(DESTDIR)$(LIBDIR)"
	@set -e; for p in $(MAN_PAGES); do \
		install -m 0644 $$p $(DESTDIR)$(MANDIR)/man$${p##*.}/; \
	done; echo "installed $(notdir $(MAN_PAGES)) in $(DESTDIR)$(MANDIR)"
	install -m 0644 asha.conf.example $(DESTDIR)$(DOCDIR)/
	$(call put_paths,cron.d/asha,$(DESTDIR)$(CRONDIR)/asha)
	@set -e; for u in $(UNITS); do \
		$(call put_paths,systemd/$$u,$(DESTDIR)$(UNITDIR)/$$u); \
	done; echo "installed $(UNITS) in $(DESTDIR)$(UNITDIR)"
	$(call put_paths,inittab.d/asha,$(DESTDIR)$(DATADIR)/inittab)
	@if ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		if "$(PYTHON)" -c '' 2>/dev/null; then \
			echo "note: $(PYTHON) is Python $$("$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); asha needs 3.11 or later" >&2; \
		else echo "note: cannot run $(PYTHON), the interpreter of the installed tools" >&2; fi; \
	else \
		mods=; pkgs=; for mp in $(DIST_MODULES); do \
			"$(PYTHON)" -c "import $${mp%%:*}" 2>/dev/null || { mods="$$mods $${mp%%:*}"; pkgs="$$pkgs $${mp#*:}"; }; \
		done; \
		[ -z "$$mods" ] || echo "note: $(PYTHON) cannot import$$mods; apt-get install$$pkgs" >&2; \
	fi
	@[ -e $(DESTDIR)/etc/asha.conf ] || echo "next: /etc/asha.conf from $(DOCDIR)/asha.conf.example (asha.conf(5)), then asha(7) for the first start"

uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(TOOLS))
	rm -rf $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)
	rm -f $(foreach p,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(notdir $(p)))
	rm -f $(DESTDIR)$(CRONDIR)/asha $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
