#!/usr/bin/env bash
# The README's second command: the whole test suite, against the local PostgreSQL and RabbitMQ
# (started if stopped) and the in-process vendor sandbox. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/services.sh
# The API's fuzz test (tests/tests/api_fuzz.rs) runs schemathesis, from PyPI, at a pinned version
# (as `python3 -m schemathesis.cli`: no script on PATH needed).
SCHEMATHESIS=4.32.5
installed=$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$installed" != "$SCHEMATHESIS" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "schemathesis==$SCHEMATHESIS"
fi
# The admin console's tests (tests/tests/console_browser*.rs) drive Debian's Chromium through
# its ChromeDriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq)
  [ "$(id -u)" -eq 0 ] || apt=(sudo "${apt[@]}")
  browser=(install -y --no-install-recommends chromium chromium-driver)
  "${apt[@]}" "${browser[@]}" >/dev/null || { "${apt[@]}" update && "${apt[@]}" "${browser[@]}" >/dev/null; }
fi
# The process-level tests (kill -9, SIGTERM) start the real aic-worker binary.
cargo build --workspace --bins
# Every test binary runs even after one fails, so that one run shows every failure.
cargo test --workspace --all-targets --no-fail-fast "$@"
