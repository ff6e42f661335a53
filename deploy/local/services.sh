#!/usr/bin/env bash
# Makes sure the local PostgreSQL and RabbitMQ answer: starts them when they are installed but
# stopped, and says exactly what to install when they are absent. Used by the demo, the test
# command and CI. Ports: PostgreSQL 5432, RabbitMQ 5672 (override with PGPORT / AMQP_PORT).
set -euo pipefail

PGPORT="${PGPORT:-5432}"
AMQP_PORT="${AMQP_PORT:-5672}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "services: $what did not come up on 127.0.0.1:$port within 60 s" >&2
  return 1
}

ensure_postgres() {
  if port_open "$PGPORT" && pg_ready; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    echo "services: starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port "$PGPORT" PostgreSQL
    for _ in $(seq 1 60); do pg_ready && return 0; sleep 0.5; done
    echo "services: PostgreSQL listens but does not accept connections" >&2
    return 1
  fi
  cat >&2 <<'MSG'
services: PostgreSQL is not installed. Install it with:
    apt-get update && apt-get install -y postgresql
and allow local trust (or password) access for the user in AIC_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432).
MSG
  return 1
}

pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p "$PGPORT"
  else
    port_open "$PGPORT"
  fi
}

ensure_rabbitmq() {
  if port_open "$AMQP_PORT"; then return 0; fi
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_port "$AMQP_PORT" RabbitMQ
    # The port opens before the broker is fully booted; wait for it to say so.
    if command -v rabbitmqctl >/dev/null 2>&1; then
      rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || true
    fi
    return 0
  fi
  cat >&2 <<'MSG'
services: RabbitMQ is not installed. Install it with:
    apt-get update && apt-get install -y rabbitmq-server
(3.10 or newer: the worker uses quorum queues). The default guest/guest user works on loopback.
MSG
  return 1
}

case "${1:-start}" in
  start|ensure)
    ensure_postgres
    ensure_rabbitmq
    echo "services: PostgreSQL on 127.0.0.1:$PGPORT and RabbitMQ on 127.0.0.1:$AMQP_PORT are up"
    ;;
  *)
    echo "usage: $0 [start]" >&2
    exit 2
    ;;
esac
