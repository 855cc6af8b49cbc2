#!/usr/bin/env bash
# Wall time of a full backup to S3 (the loopback moto server of the test services) through
# the test proxy adding latency to every request, at several --concurrency levels.
#
# Usage: bench/upload.sh [MB] [DELAY_MS] [LEVELS]
#   MB        data backed up, incompressible, in 10 MiB volumes (default 300)
#   DELAY_MS  latency the proxy adds to each request (default 50)
#   LEVELS    --concurrency values, comma-separated (default 1,4)
#   PROFILE   env: cargo profile of the test build (default dev: dependencies such as gzip,
#             SHA1 and HTTP are built with opt-level 2 there; use release for a full one)
# Needs the test servers (scripts/test.sh starts them; /tmp/test-services/s3/s3.env).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_MB=${1:-300} BENCH_DELAY_MS=${2:-50} BENCH_CONCURRENCY=${3:-1,4}
cargo test --profile "${PROFILE:-dev}" --locked --test upload -- --ignored --nocapture --exact \
    bench_upload_concurrency 2>&1 | grep -E '^[0-9]+ MB|panicked|FAILED'
