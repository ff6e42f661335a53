#!/usr/bin/env bash
# The README's first command: the whole system, locally, against the vendor sandbox.
# Ensures PostgreSQL and RabbitMQ, builds the binaries, and runs the demo driver, which starts
# the sandbox, the control plane and a worker and prints what they did. Extra arguments go to
# the driver (e.g. --exit to stop after the results, --batch 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/services.sh
echo "demo: building (the first build takes a few minutes)"
cargo build --quiet --bins
exec target/debug/aic-demo "$@"
