#!/usr/bin/env bash
# The whole test suite: format and lint checks, unit tests, and the integration tests
# against the real duplicity (installed by setup.sh when missing) and real storage servers
# on loopback (OpenStack Swift with Keystone v3 and the PCA sealing emulation, and S3 with
# archive storage classes, and an SFTP server, started from .ci/services; stopped again at the end unless
# FERRODUP_KEEP_SERVICES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
DUPLICITY=$(bash scripts/setup.sh | tail -n 1)
export DUPLICITY
export TEST_SERVICES_DIR=${TEST_SERVICES_DIR:-/tmp/test-services}
if [ "${FERRODUP_KEEP_SERVICES:-0}" != 1 ]; then
    trap 'for s in swift keystone s3 sftp; do bash .ci/services/stop-$s.sh >/dev/null 2>&1 || true; done' EXIT
fi
rm -f "$TEST_SERVICES_DIR/restarts.log"
bash .ci/services/start-keystone.sh
SWIFT_AUTH=keystone bash .ci/services/start-swift.sh
bash .ci/services/start-s3.sh
bash .ci/services/start-sftp.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Every test binary's tests in one pool (cargo-nextest, on the Rust image), so that one
# slow binary does not leave the other cores idle; plain cargo test where it is missing.
# The benches are compiled (by clippy above), not run.
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --lib --bins --tests --no-fail-fast || status=$?
else
    cargo test --locked --lib --bins --tests || status=$?
fi
# A test server that ended during the run (the services' supervisor started it again)
# explains the failures of the tests that used it.
if [ -s "$TEST_SERVICES_DIR/restarts.log" ]; then
    echo "test servers that ended during the run:" >&2
    cat "$TEST_SERVICES_DIR/restarts.log" >&2
fi
exit "$status"
