# syntax=docker/dockerfile:1
# One image for every service; docker-compose.yml picks the service with `command`.
#   docker build .                 production (the last stage): the five services, the `omni` admin command and
#                                  the example routing rule, in a virtualenv on python:3.11-slim; no uv, no sources
#   docker build --target full .   the same plus pyproject.toml's `local` group: the provider simulator, the
#                                  local run with its nx-27017 stand-in, and the example provider
# tests/unit/test_image.py replays the build stages without Docker: it copies what they COPY into an empty
# folder, runs their `uv sync` offline and imports every service from the environment that made.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# The whole workspace: uv reads every member's pyproject.toml, and builds the ones production installs.
COPY pyproject.toml uv.lock README.md ./
COPY libs ./libs
COPY services ./services
COPY tools ./tools
COPY examples ./examples
# --no-dev leaves out the dev group (test tools, and through it the `local` group); --no-editable installs the
# members themselves into the environment, so it works without the sources.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM build AS build-full
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group local --no-editable

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 omni \
    && useradd --system --uid 10001 --gid omni --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin omni
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/app/.venv/bin:$PATH \
    HTTP_HOST=0.0.0.0
WORKDIR /app
EXPOSE 8080 8081 8082 8083 8084
CMD ["python", "-m", "omni_router"]

FROM runtime AS full
# The environment keeps the path it was made at: its scripts (`omni`, `nx-27017`) name /app/.venv/bin/python.
COPY --from=build-full /app/.venv /app/.venv
USER 10001:10001

FROM runtime AS production
COPY --from=build /app/.venv /app/.venv
USER 10001:10001
