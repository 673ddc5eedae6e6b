#!/usr/bin/env bash
# Runs the test suite: makes sure uv, the environment and the local RabbitMQ (with its management API) are there,
# then `uv run pytest` with this script's arguments; pytest's exit code is the script's.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "scripts/test.sh: error: $*" >&2
  exit 1
}

answers() { # host port: whether something accepts TCP connections there
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # seconds host port
  local deadline=$((SECONDS + $1))
  until answers "$2" "$3"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet uv
fi
if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
"${UV[@]}" sync --frozen

# The operator console's browser test drives Debian's chromium through Playwright (whose own browser
# downloads are never used), so the system browser is installed here when it is missing.
if ! command -v chromium >/dev/null 2>&1; then
  echo "scripts/test.sh: installing chromium for the console's browser test"
  if ((EUID == 0)); then SUDO=(); else SUDO=(sudo); fi
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq chromium; } ||
    die "\`apt-get install chromium\` failed; the console's browser test (tests/e2e/test_console.py) needs it"
  command -v chromium >/dev/null 2>&1 || die "chromium is still not on PATH after installing it"
fi

# deploy/Caddyfile (compose's HTTPS proxy) is validated and run in front of the services by Debian's caddy
# (on a host with systemd the package also starts its own caddy service on port 80; the tests do not use it).
if ! command -v caddy >/dev/null 2>&1; then
  echo "scripts/test.sh: installing caddy for the proxy's test"
  if ((EUID == 0)); then SUDO=(); else SUDO=(sudo); fi
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq caddy; } ||
    die "\`apt-get install caddy\` failed; the proxy's test (tests/e2e/test_proxy.py) needs it"
  command -v caddy >/dev/null 2>&1 || die "caddy is still not on PATH after installing it"
fi

# The benchmark (bench/throughput.py, run tiny by tests/integration/test_bench.py) drives ingress with Debian's wrk.
if ! command -v wrk >/dev/null 2>&1; then
  echo "scripts/test.sh: installing wrk for the benchmark's test"
  if ((EUID == 0)); then SUDO=(); else SUDO=(sudo); fi
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk; } ||
    die "\`apt-get install wrk\` failed; the benchmark's test (tests/integration/test_bench.py) needs it"
  command -v wrk >/dev/null 2>&1 || die "wrk is still not on PATH after installing it"
fi

# The broker the tests use is AMQP_URL's (default: the local one); only a local one is ours to start.
read -r AMQP_HOST AMQP_PORT < <(python3 -c '
import os, urllib.parse
url = urllib.parse.urlsplit(os.environ.get("AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/")
print(url.hostname or "127.0.0.1", url.port or 5672)')
case "$AMQP_HOST" in
  127.0.0.1 | localhost | ::1) LOCAL_BROKER=1 ;;
  *) LOCAL_BROKER=0 ;;
esac

if ((LOCAL_BROKER)); then
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"
  command -v rabbitmq-server >/dev/null 2>&1 ||
    answers "$AMQP_HOST" "$AMQP_PORT" ||
    die "RabbitMQ does not answer on $AMQP_HOST:$AMQP_PORT and rabbitmq-server is not installed (apt-get install rabbitmq-server)"

  if answers "$AMQP_HOST" "$AMQP_PORT"; then
    if ! answers 127.0.0.1 15672; then
      echo "scripts/test.sh: enabling the RabbitMQ management plugin"
      rabbitmq-plugins enable rabbitmq_management >/dev/null ||
        die "\`rabbitmq-plugins enable rabbitmq_management\` failed"
    fi
  else
    echo "scripts/test.sh: RabbitMQ is down, starting it with the management plugin"
    # The node is down: --offline writes the plugin into enabled_plugins, which the start below reads.
    rabbitmq-plugins enable --offline rabbitmq_management >/dev/null ||
      die "\`rabbitmq-plugins enable --offline rabbitmq_management\` failed"
    rabbitmq-server -detached || die "\`rabbitmq-server -detached\` failed"
  fi
  wait_for 90 "$AMQP_HOST" "$AMQP_PORT" ||
    die "RabbitMQ does not answer on $AMQP_HOST:$AMQP_PORT after 90 s (see /var/log/rabbitmq/ and \`rabbitmq-diagnostics status\`)"
  wait_for 60 127.0.0.1 15672 ||
    die "RabbitMQ's management API does not answer on 127.0.0.1:15672 after 60 s (see /var/log/rabbitmq/)"
elif ! answers "$AMQP_HOST" "$AMQP_PORT"; then
  die "RabbitMQ does not answer on $AMQP_HOST:$AMQP_PORT (AMQP_URL); start it or unset AMQP_URL to use the local one"
fi

exec "${UV[@]}" run --frozen pytest "$@"
