# Two entry points for people and CI:
#   make run    run mailbot on config/mailbot.toml (SMTP on 127.0.0.1:8025, data in config/var/)
#   make test   install everything the tests need (venv, pip, Debian packages), run them all
# `make soak` runs the long crash and fuzz campaigns (see README, "Guarantees").

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Real servers the tests use: Dovecot for IMAP ingress, Chromium for the pages, Postfix
# and swaks for the MTA recipe (docs/deploy.md).
APT_PACKAGES := dovecot-imapd openssl chromium fonts-liberation fonts-dejavu-core postfix swaks

.PHONY: run test lint soak bench venv system-packages clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/mailbot serve --config config/mailbot.toml

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root for apt-get (or install:$$missing)"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  case "$$missing " in *" postfix "*) \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections;; esac; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
# ruff and mypy first: the `noqa` and `type: ignore` comments are claims that they check.
test: $(STAMP) system-packages lint
	@$(PY) -m pytest -q -m "not soak" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests ran (pytest exit 5); failing"; exit 1; fi; \
	exit $$rc

soak: $(STAMP) system-packages
	@$(PY) -m pytest -q -m soak $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make soak: no tests ran (pytest exit 5); failing"; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(PY) -m ruff check mailbot tests bench
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var config/var test-artifacts .pytest_cache
