#!/usr/bin/env bash
# The README's second command: the whole test suite, against the local PostgreSQL and RabbitMQ
# (started if stopped) and the in-process vendor sandbox. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/services.sh
cargo test --workspace --all-targets "$@"
