# Everyday tasks. Each one first makes sure uv is there and the environment matches uv.lock.

.PHONY: setup run demo test lint

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

## lint: ruff (rules and formatting) and mypy, as CI runs them
lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
