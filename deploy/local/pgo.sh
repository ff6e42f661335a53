#!/usr/bin/env bash
# Builds target/pgo/aic-worker: the worker compiled with a profile of its own hot path
# (profile-guided optimisation), taken from aic-bench runs against the local RabbitMQ and
# PostgreSQL (started if stopped) and the sandbox. Per execution it runs 16-20% fewer instructions
# than the standard build and costs 10-19% less CPU, on each vendor's automation of the benchmark
# (BENCHMARKS.md, thirty-third session). That was against the standard build before it had
# link-time optimisation; since the thirty-sixth session both builds have it, and the profile
# still takes 14-20% of the instructions (112.5-122.1 k -> 90.2-104.3 k per execution across the
# four automations, thirty-seventh session) and 9-20% of the CPU.
#
#   bash deploy/local/pgo.sh          # then: target/release/aic-bench --worker target/pgo/aic-worker
#
# It takes two builds of the worker (a few minutes each on two cores) and a minute or two of
# training. The profile it leaves, target/pgo/aic-worker.profdata, also builds the container
# image's worker (deploy/container/Dockerfile, build argument WORKER_PROFILE). A profile fits
# the source and compiler it was made with: make it again after changing either.
#
# The training runs each vendor's automation of the benchmark (`aic-bench --vendor`: Salesforce's
# on every row, ServiceNow's, Jira's and Slack's on the drained and full rows); code it never
# reached (the failure paths, the other templates' mappings) keeps the standard build's
# optimisation (`-pgso=false`: LLVM would otherwise compile code without counts for size).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/services.sh

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  if command -v rustup >/dev/null 2>&1; then
    echo "pgo: adding rustup's llvm-tools component (llvm-profdata)"
    rustup component add llvm-tools
  fi
  if [ ! -x "$profdata" ]; then
    echo "pgo: $profdata is missing: install the llvm-tools component of this toolchain" >&2
    exit 1
  fi
fi

out="$PWD/target/pgo"
mkdir -p "$out"
rm -rf "$out/raw" "$out/aic-worker" "$out/aic-worker.profdata"

# The benchmark that trains the worker, and the standard build beside it.
cargo build --release --locked --bins

# Separate target folders keep the standard build's artifacts, and an explicit --target keeps
# the flags off build scripts and procedural macros. AIC_WORKER_BUILD names the build in
# `aic-worker --version`, which the benchmark's report records.
build_worker() {
  local folder=$1 build=$2 flags=$3
  RUSTFLAGS="${RUSTFLAGS:-} $flags" AIC_WORKER_BUILD="$build" \
    cargo build --release --locked -p aic-worker --bin aic-worker \
    --target "$host" --target-dir "$out/$folder"
}

echo "pgo: building the instrumented worker"
build_worker instrumented profile-generating "-Cprofile-generate=$out/raw"
instrumented="$out/instrumented/$host/release/aic-worker"

echo "pgo: training it (aic-bench: drained, full, paced, slow over HTTP/1.1 and HTTP/2, upserts, reply queues, every vendor)"
: >"$out/training.log"
bench() {
  target/release/aic-bench --worker "$instrumented" "$@" >>"$out/training.log" 2>&1 || {
    echo "pgo: the training run failed (aic-bench $*); its output: $out/training.log" >&2
    exit 1
  }
}
bench --only drain,full,paced,slow,slow-h2 --n 10000 --paced-rate 1000 --json "$out/training.json"
bench --only full --upsert --n 2000 --json "$out/training-upsert.json"
bench --only full --reply-to --n 2000 --json "$out/training-reply-to.json"
for vendor in servicenow jira slack; do
  bench --vendor "$vendor" --only drain,full --n 2000 --json "$out/training-$vendor.json"
done
"$profdata" merge -o "$out/aic-worker.profdata" "$out/raw"

echo "pgo: building the worker with the profile"
build_worker optimised profile-guided "-Cprofile-use=$out/aic-worker.profdata -Cllvm-args=-pgso=false"
cp "$out/optimised/$host/release/aic-worker" "$out/aic-worker"
"$out/aic-worker" --version
echo "pgo: built target/pgo/aic-worker; measure it: target/release/aic-bench --worker target/pgo/aic-worker"
