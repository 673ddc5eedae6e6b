# Everyday tasks. Each one first makes sure uv is there and the environment matches uv.lock.

.PHONY: setup run demo test unit lint bench

# uv from PyPI when it is not on PATH; `python3 -m uv` reaches it even where pip's scripts directory is not on PATH.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

## run: RabbitMQ (started if down), nx-27017 in place of MongoDB, the five services and the provider simulator
run: setup
	$(UV) run --frozen python -m omni_devrun

## demo: the local run, seeded with a queue, an online operator and a third-party channel; prints curl lines
demo: setup
	$(UV) run --frozen python -m omni_devrun --demo

## test: the whole suite (RabbitMQ is started if down); pass pytest arguments with ARGS="-k replies -x"
test: setup
	./scripts/test.sh $(ARGS)

## unit: the pure tests (tests/unit but the image's build replays: no broker, no database, the router's use cases on
## in-memory fakes), with how much of the router's domain and service layers they cover (at least 90 %)
unit: setup
	$(UV) run --frozen pytest tests/unit -m "not image" -p no:cacheprovider \
		--cov=omni_router.domain --cov=omni_router.service_layer --cov-report=term --cov-fail-under=90 $(ARGS)

## lint: ruff (rules and formatting) and mypy, as CI runs them
lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

## bench: the throughput benchmark (bench/throughput.py; Debian's wrk on PATH): ingress beside raw confirmed publishes,
## the router's drain beside raw insert_many, commands per message (drain, returning customers at 200/s), p99 at
## 100/s, RSS; options with ARGS="--help"
bench: setup
	$(UV) run --frozen python -m bench.throughput $(ARGS)
