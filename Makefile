# The two commands: `make run` serves the app on 127.0.0.1:8000 with its background worker,
# `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install lint messages bench drills

$(VENV)/installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The translation catalogues, compiled from locale/*/LC_MESSAGES/django.po (git keeps only
# the .po files).
MO := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/django.po))

locale/%.mo: locale/%.po $(VENV)/installed
	$(PY) -m babel.messages.frontend --quiet compile --input-file=$< --output-file=$@

install: $(VENV)/installed $(MO)

# The background worker runs beside the web server and stops with it (Ctrl-C reaches both).
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	$(PY) manage.py run_worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; \
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Refresh the catalogues from the code after changing a string (needs GNU gettext:
# apt-get install gettext), then translate what is new in locale/ru/. English is the
# code's own text, copied (msgen), and merged without fuzzy matching, so a new message
# never takes an old one's text. CI checks that this changes nothing.
EN_PO := locale/en/LC_MESSAGES/django.po
messages: install
	$(PY) manage.py makemessages --locale ru --keep-pot --no-obsolete --no-location \
		--ignore 'tests/*' --ignore '*/tests/*' --ignore 'bench/*' --ignore 'staticfiles/*' \
		--ignore 'artifacts/*'
	msgmerge --quiet --no-fuzzy-matching --no-location $(EN_PO) locale/django.pot \
		| msgattrib --no-obsolete | msgen --output-file=$(EN_PO) -
	rm locale/django.pot

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The intake under load on the local PostgreSQL (about four minutes): see bench/README.md.
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# Reliability drills on the local PostgreSQL (see bench/README.md, Reliability drills): DRILL=ci
# (outage, kill and cluster, as CI runs them), outage, kill, cluster, or soak.
DRILL ?= ci
drills: install
	$(PY) -m bench.drills $(DRILL) $(DRILL_ARGS)
