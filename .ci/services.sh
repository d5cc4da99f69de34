#!/usr/bin/env bash
# Install and start what the tests need, for any service not answering on loopback.
set -euo pipefail

answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
apt_updated=""
need_pkg() {
  dpkg -s "$1" >/dev/null 2>&1 && return 0
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
wait_for() {
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 1; done
  echo "services: $2 did not start on 127.0.0.1:$1" >&2
  return 1
}

need_pkg python3-venv || true
need_pkg tesseract-ocr
need_pkg fonts-dejavu-core  # the OCR tests render their pages' text with it
need_pkg postgresql-client
need_pkg docker-compose  # v1, only to parse and check docker-compose.yml (no engine here)
need_pkg rclone          # the anchor bench/s3_sync.py compares with
need_pkg prometheus      # promtool tests the alert rules; the server scrapes a test instance
need_pkg chromium        # the browser tests drive it with Playwright (its own download does not work here)

if ! answers 5432; then
  need_pkg postgresql
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for 5432 PostgreSQL
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  echo "services: PostgreSQL needs trust auth for postgres on 127.0.0.1 and a database 'test'" >&2
  exit 1
fi
if ! answers 6379; then
  need_pkg redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi
if ! answers 5672; then
  need_pkg rabbitmq-server
  rabbitmq-server -detached
  wait_for 5672 RabbitMQ
fi
echo "services: PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1"
