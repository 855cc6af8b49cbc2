#!/usr/bin/env bash
# ferrodup against duplicity over the loopback Swift and S3 of the test services with
# added latency: a full backup of the generated tree (bench/tree.py) and a restore of it,
# through bench/delay_proxy.py (DELAY ms each way, a round trip per new connection, a
# TCP-like window per connection). Same table as bench/compare.sh: wall, CPU, peak RSS,
# stored bytes, ratios to the first tool; every restore is compared with the tree (modes
# and mtimes too).
#
# Usage: bench/remote.sh [options]
#   --scale F         size of the tree (default 0.1: ~59 MB; 1 = ~591 MB)
#   --seed N          seed of the tree (default 10)
#   --delay-ms MS     latency added to each direction (default 50)
#   --window-kib K    bytes on the way per connection and direction (default 4096; 0: no limit)
#   --stores LIST     swift,s3 (default both)
#   --tools LIST      from ferrodup, ferrodup-c1 (--concurrency 1), duplicity,
#                     duplicity-c4 (--concurrency 4); default all four, the first is the
#                     one the ratios compare with
#   --runs N          median of N runs (default 1)
#   --work DIR        work folder, kept, reused; --keep keeps the temporary one
# Needs the test servers (scripts/test.sh starts them; settings in
# $TEST_SERVICES_DIR/{swift,s3}/*.env, default /tmp/test-services). Environment:
# FERRODUP, DUPLICITY as in bench/compare.sh.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SCALE=0.1
SEED=10
DELAY=50
WINDOW=4096
STORES=swift,s3
TOOLS=ferrodup,ferrodup-c1,duplicity,duplicity-c4
RUNS=1
WORK=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --delay-ms) DELAY=${2:?--delay-ms needs a value}; shift 2 ;;
        --window-kib) WINDOW=${2:?--window-kib needs a value}; shift 2 ;;
        --stores) STORES=${2:?--stores needs a value}; shift 2 ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --work) WORK=${2:?--work needs a folder}; KEEP=1; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not $RUNS"
[[ $DELAY =~ ^[0-9]+$ ]] || die "--delay-ms must be a number of milliseconds, not $DELAY"
[[ $WINDOW =~ ^[0-9]+$ ]] || die "--window-kib must be a number, not $WINDOW"
need_gnu_time

SERVICES=${TEST_SERVICES_DIR:-/tmp/test-services}
# service VAR FILE: a variable of a test service's env file.
service() {
    [ -f "$SERVICES/$2/$2.env" ] ||
        die "$SERVICES/$2/$2.env missing: start the test servers (scripts/test.sh starts them)"
    # shellcheck disable=SC1090
    (source "$SERVICES/$2/$2.env" && printf '%s' "${!1}")
}

IFS=, read -r -a WANTED <<<"$TOOLS"
FD=""
DUP=""
for tool in "${WANTED[@]}"; do
    case "$tool" in
        ferrodup | ferrodup-c1) [ -n "$FD" ] || FD=$(ferrodup_bin) ;;
        duplicity | duplicity-c4) [ -n "$DUP" ] || DUP=$(duplicity_bin) ;;
        *) die "unknown tool $tool: choose from ferrodup,ferrodup-c1,duplicity,duplicity-c4" ;;
    esac
done
IFS=, read -r -a STORE_LIST <<<"$STORES"
for store in "${STORE_LIST[@]}"; do
    case "$store" in swift | s3) ;; *) die "unknown store $store: choose from swift,s3" ;; esac
done

if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /var/tmp/ferrodup-remote.XXXXXX)
else
    KEEP=1
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
BASE=$(make_tree "$WORK" "$SCALE" "$SEED")
RESULTS=$WORK/results.txt
: >"$RESULTS"

# A delaying proxy in front of each server, stopped on exit.
PROXY_PIDS=()
stop_proxies() {
    for pid in "${PROXY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
# start_proxy NAME HOST:PORT: sets PROXY_PORT (not in a subshell: the pid must be kept).
start_proxy() {
    python3 "$BENCH_DIR/delay_proxy.py" "$2" --delay-ms "$DELAY" --window-kib "$WINDOW" \
        >"$WORK/proxy-$1.port" 2>"$WORK/proxy-$1.log" &
    PROXY_PIDS+=($!)
    for _ in $(seq 50); do
        [ -s "$WORK/proxy-$1.port" ] && break
        sleep 0.1
    done
    [ -s "$WORK/proxy-$1.port" ] || die "the delaying proxy for $1 did not start: $(cat "$WORK/proxy-$1.log")"
    PROXY_PORT=$(head -n 1 "$WORK/proxy-$1.port")
}
trap 'stop_proxies; [ $KEEP = 1 ] || rm -rf "$WORK"' EXIT

hostport() { # URL -> HOST:PORT
    local rest=${1#*://}
    echo "${rest%%/*}"
}

S3_PY=""
if [[ ,$STORES, == *,s3,* ]]; then
    S3_DIRECT=$(service S3_ENDPOINT_URL s3)
    S3_PY=$(service S3_PYTHON s3)
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
    AWS_ACCESS_KEY_ID=$(service AWS_ACCESS_KEY_ID s3)
    AWS_SECRET_ACCESS_KEY=$(service AWS_SECRET_ACCESS_KEY s3)
    AWS_REGION=$(service AWS_REGION s3)
    start_proxy s3 "$(hostport "$S3_DIRECT")"
    S3_PROXY=http://127.0.0.1:$PROXY_PORT
fi
if [[ ,$STORES, == *,swift,* ]]; then
    SWIFT_DIRECT=$(service SWIFT_PROXY_URL swift)
    # Both tools log in with tempauth through the proxy, which answers with a storage URL
    # on the proxy (tempauth builds it from the Host header); this token lists and cleans.
    headers=$(curl -sfS -D - -o /dev/null -H "X-Auth-User: $(service SWIFT_V1_USER swift)" \
        -H "X-Auth-Key: $(service SWIFT_V1_KEY swift)" "$(service SWIFT_V1_AUTH_URL swift)") ||
        die "Swift tempauth login failed at $(service SWIFT_V1_AUTH_URL swift)"
    SWIFT_TOKEN=$(echo "$headers" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-auth-token" { print $2 }')
    SWIFT_STORAGE=$(echo "$headers" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-storage-url" { print $2 }')
    if [ -z "$SWIFT_TOKEN" ] || [ -z "$SWIFT_STORAGE" ]; then
        die "Swift tempauth gave no token or storage URL"
    fi
    SWIFT_USER=$(service SWIFT_V1_USER swift)
    SWIFT_KEY=$(service SWIFT_V1_KEY swift)
    SWIFT_AUTH_PATH=/$(service SWIFT_V1_AUTH_URL swift | cut -d/ -f4-)
    start_proxy swift "$(hostport "$SWIFT_DIRECT")"
    SWIFT_PROXY=http://127.0.0.1:$PROXY_PORT
fi
# Only the settings given here: no other Swift login is tried.
for v in $(env | sed -n 's/^\(\(SWIFT\|PCA\|ST\)_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

s3py() { # CODE (with s3, bucket)
    "$S3_PY" -c "import boto3, sys
from botocore.config import Config
s3 = boto3.client('s3', endpoint_url='$S3_DIRECT', region_name='$AWS_REGION',
    config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))
bucket = sys.argv[1]
$2" "$1"
}
swift_bytes() { # CONTAINER
    local total=0 c b
    for c in "$1" "$1_segments"; do
        b=$(curl -sfS -I -H "X-Auth-Token: $SWIFT_TOKEN" "$SWIFT_STORAGE/$c" 2>/dev/null | tr -d '\r' |
            awk -F': ' 'tolower($1) == "x-container-bytes-used" { print $2 }') || b=0
        total=$((total + ${b:-0}))
    done
    echo "$total"
}
swift_delete() { # CONTAINER
    local c
    for c in "$1" "$1_segments"; do
        swift --os-storage-url "$SWIFT_STORAGE" --os-auth-token "$SWIFT_TOKEN" delete "$c" \
            >/dev/null 2>&1 || true
    done
}

# one STORE TOOL RUN: a full backup into a new container or bucket, then a restore.
one() {
    local store=$1 tool=$2 d=$WORK/run-$1-$2 name url opts=() bin conc=()
    name=bench-$tool-$(date +%s)-$$
    rm -rf "$d"
    mkdir -p "$d"
    case "$store" in
        s3)
            s3py "$name" 's3.create_bucket(Bucket=bucket)' || die "could not create bucket $name"
            url=s3://$name/bench
            opts=(--s3-endpoint-url "$S3_PROXY")
            ;;
        swift)
            url=swift://$name
            export SWIFT_AUTHURL=$SWIFT_PROXY$SWIFT_AUTH_PATH SWIFT_AUTHVERSION=1 \
                SWIFT_USERNAME=$SWIFT_USER SWIFT_PASSWORD=$SWIFT_KEY
            ;;
    esac
    case "$tool" in
        ferrodup) bin=$FD ;;
        ferrodup-c1) bin=$FD conc=(--concurrency 1) ;;
        duplicity) bin=$DUP ;;
        duplicity-c4) bin=$DUP conc=(--concurrency 4) ;;
    esac
    timed "$d/log" "$bin" full --no-encryption --archive-dir "$d/cache" "${conc[@]}" "${opts[@]}" \
        "$BASE" "$url"
    local stored
    case "$store" in
        s3) stored=$(s3py "$name" "print(sum(o['Size'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket) for o in p.get('Contents', [])))") ;;
        swift) stored=$(swift_bytes "$name") ;;
    esac
    record "$RESULTS" "$store" "$tool" full "$stored"
    timed "$d/log" "$bin" restore --no-encryption --archive-dir "$d/cache" "${conc[@]}" "${opts[@]}" \
        "$url" "$d/restored"
    record "$RESULTS" "$store" "$tool" restore -
    if ! python3 "$TREE_PY" compare "$BASE" "$d/restored" --meta >&2; then
        KEEP=1
        die "the $tool restore from $store differs from the tree (run $3; kept in $d and $url)"
    fi
    case "$store" in
        s3) s3py "$name" "
for p in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket):
    for o in p.get('Contents', []):
        s3.delete_object(Bucket=bucket, Key=o['Key'])
s3.delete_bucket(Bucket=bucket)" ;;
        swift) swift_delete "$name" ;;
    esac
    rm -rf "$d"
}

for run in $(seq 1 "$RUNS"); do
    for store in "${STORE_LIST[@]}"; do
        for tool in "${WANTED[@]}"; do
            one "$store" "$tool" "$run"
        done
    done
done

read -r FILES MB < <(find "$BASE" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s / 1e6 }')
TITLE="Loopback Swift (tempauth) and S3 (moto) behind bench/delay_proxy.py: $DELAY ms each way, \
window $WINDOW KiB per connection; generated tree: scale $SCALE, seed $SEED, $FILES files, $MB MB; \
$(nproc) cores; no encryption. ferrodup-c1 and duplicity-c4: --concurrency 1 and 4."
python3 "$TREE_PY" table "$RESULTS" --title "$TITLE" | tee "$WORK/table.md"
[ $KEEP = 0 ] || note "work folder: $WORK (results.txt, table.md)"
