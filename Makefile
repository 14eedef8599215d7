# Developer commands. `make test` and `make demo` set up everything they need
# on a fresh Debian machine as root: apt packages, then a virtualenv in .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := iproute2 nftables rsync openssh-server openssh-client socat sqlite3 \
	mandoc kamailio python3-venv procps iputils-ping ethtool
PY_PACKAGES := pyserial pyusb psutil docopt-ng pytest hypothesis

.PHONY: all test unit lab demo deps venv lint clean

all: test

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.done: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q $(PY_PACKAGES)
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.done

test: deps venv
	@[ "$$(id -u)" = 0 ] || { echo "make test: the lab tests need root (network namespaces)"; exit 1; }
	$(VENV)/bin/pytest -q

unit: venv
	$(VENV)/bin/pytest -q tests/unit

lint:
	mandoc -Tlint -W warning man/*.[1-8]

clean:
	rm -rf $(VENV) build *.egg-info lib/*.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
