# The two commands: `make run` and `make test`. Everything else is a helper they use.
SHELL := /bin/bash
PYTHON ?= python3
BOOT := .bootstrap
UV := $(BOOT)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
RUN := $(UV) run --frozen --python $(PYTHON)

.PHONY: run test install browser wrk lint lint-deploy bench fuzz unit integration e2e clean messages compile-messages

run: install  ## install, start embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL), migrate, seed, serve + worker
	$(RUN) sweetdream dev

test: install browser lint  ## unit + integration, then the Playwright journeys (separate run: see RECIPES)
	$(RUN) pytest tests/unit tests/integration -q
	$(RUN) pytest tests/e2e -q

unit: install
	$(RUN) pytest tests/unit -q

integration: install
	$(RUN) pytest tests/integration -q

e2e: install browser
	$(RUN) pytest tests/e2e -q

lint: install lint-deploy
	$(RUN) python scripts/check_messages.py  # every string translated into Vietnamese, none fuzzy
	$(RUN) ruff check src tests workers scripts deploy
	$(RUN) ruff format --check src tests workers scripts deploy
	$(RUN) mypy

# Offline checks of deploy/ and .github/: no Docker engine, no AWS, no Terraform providers needed.
# checkov runs in its own tool environment (its pins never touch uv.lock).
CHECKOV := $(UV) tool run --quiet --python $(PYTHON) --from checkov==3.3.30 checkov
lint-deploy: install
	$(RUN) hadolint deploy/Dockerfile
	$(RUN) shellcheck deploy/release.sh
	$(RUN) actionlint
	$(RUN) python scripts/check_terraform.py
	@if command -v terraform >/dev/null; then TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive deploy/terraform && echo "terraform fmt: ok"; \
	else echo "terraform fmt: no terraform binary here, skipped (the check workflow runs it)"; fi
	$(CHECKOV) --quiet --compact --skip-download --framework terraform -d deploy/terraform
	$(CHECKOV) --quiet --compact --skip-download --framework dockerfile github_actions \
	  -f deploy/Dockerfile $(addprefix -f ,$(wildcard .github/workflows/*.yml))

bench: install browser wrk  ## every scenario (about an hour: admin, analytics and scale seed millions of rows); BENCH_SCENARIOS="catalog checkout" picks
	$(RUN) python scripts/bench.py $(BENCH_SCENARIOS)

fuzz: install  ## 6,000 hostile requests over every route against the test stack; lists every 5xx (FUZZ_ARGS="--requests N --seed S")
	$(RUN) python scripts/fuzz.py $(FUZZ_ARGS)

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) sync --frozen --python $(PYTHON) --quiet
	@$(MAKE) --no-print-directory compile-messages

# Translations (README "Languages"): `make messages` extracts every string from the code and the
# templates into locales/messages.pot and adds the new ones to each catalog; translate them in
# locales/vi/LC_MESSAGES/messages.po; `make lint` fails until they are. The .mo files are built
# here (by `make install`) and never committed.
PYBABEL := .venv/bin/pybabel
EXTRACT_OPTIONS := -F babel.cfg -k gettext_noop --no-location --sort-output --project SweetDream --copyright-holder SweetDream
messages: install
	$(PYBABEL) extract $(EXTRACT_OPTIONS) -o locales/messages.pot . >/dev/null
	$(PYBABEL) update -i locales/messages.pot -d locales --ignore-obsolete -w 100
	-@.venv/bin/python scripts/check_messages.py

compile-messages:
	@$(PYBABEL) -q compile -d locales

# Debian's chromium when running as root on a machine without a browser; Playwright's own elsewhere.
browser: install
	@if [ -x /usr/bin/chromium ]; then echo "browser: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && echo "browser: installed Debian chromium"; \
	else $(RUN) playwright install chromium; fi

# The load generator for `make bench`: Debian's wrk when running as root on a machine without one.
wrk:
	@if command -v wrk >/dev/null; then echo "wrk: $$(command -v wrk)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null && echo "wrk: installed Debian wrk"; \
	else echo "make bench needs wrk: install it with your package manager (apt-get install wrk, brew install wrk)" >&2; exit 1; fi

clean:
	rm -rf var/test .pytest_cache .mypy_cache .ruff_cache
