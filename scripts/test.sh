#!/usr/bin/env bash
# The whole test suite: format and lint checks, unit tests, and the integration tests
# against the real duplicity (installed by setup.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DUPLICITY=$(bash scripts/setup.sh | tail -n 1)
export DUPLICITY
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
