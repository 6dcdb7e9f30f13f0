#!/usr/bin/env bash
# Installs what the test suite needs outside Python: a headless browser for the page tests
# (tests/web/test_web_browser.py drives Debian's chromium through Playwright; it skips, saying why, only
# when no chromium can be found), and Debian's redis-server for the job-queue tests (tests/distributed/ start
# their own server on a free 127.0.0.1 port and skip, saying why, without one). Never fails the test run by
# itself: anything missing is reported here and by the skipped tests.
# PostgreSQL for the shared-gallery tests needs nothing from apt: Debian 12 has no pgvector package, so
# tests/faces/test_faces_postgres.py uses pgserver (PostgreSQL 16 + pgvector in a wheel, from
# requirements-dev.txt), one server per test module on a unix socket in a temporary folder (no TCP port), and
# skips, saying why, when pgserver or psycopg is not installed.
set -uo pipefail

find_chromium() {
  for candidate in "${CHROMIUM:-}" /usr/bin/chromium "$(command -v chromium 2>/dev/null)" \
                   "$(command -v chromium-browser 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests..."
    if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "warning: could not install chromium with apt-get; the browser tests will be skipped" >&2
    fi
  else
    echo "warning: chromium not found and cannot install it (needs root and apt-get); browser tests will be skipped" >&2
  fi
fi

if browser=$(find_chromium); then
  # A browser that cannot start (missing libraries) would only fail later, inside the tests.
  if ! "$browser" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; then
    echo "warning: $browser is installed but does not start; the browser tests will fail" >&2
  fi
fi
# The job queue's tests need only the redis-server binary: each test module starts its own (loopback, no
# persistence, a temporary folder) and stops it; the service Debian's package enables is not used.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's redis-server for the job-queue tests..."
    if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }; then
      echo "warning: could not install redis-server with apt-get; the job-queue tests will be skipped" >&2
    fi
  else
    echo "warning: redis-server not found and cannot install it (needs root and apt-get); job-queue tests will be skipped" >&2
  fi
fi
# jemalloc: the `neuralens` command runs under it when present (neuralens/allocator.py; print sizes about a third
# faster); its test is skipped without it. Debian's redis-server already depends on it.
if [ ! -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] && [ ! -e /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 ] \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 \
    || echo "warning: could not install libjemalloc2; the command runs with the system's malloc" >&2
fi
exit 0
