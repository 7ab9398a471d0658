#!/usr/bin/env bash
# Benchmarks (BENCHMARKS.md): installs what the tests need plus wrk, nginx and HAProxy for
# the proxy suite (scripts/packages.sh), builds the release binaries, and runs mcp-bench. Arguments go to mcp-bench; the
# default is every suite: `scripts/bench.sh` = `scripts/bench.sh all`.
# Examples: scripts/bench.sh deploy --runs 9 ; scripts/bench.sh fleet --fleet 20,200
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_bench_packages

cargo build --release --bins
(($#)) || set -- all
exec target/release/mcp-bench "$@"
