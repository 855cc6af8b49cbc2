#!/usr/bin/env bash
# Throughput and peak memory of ferrodup (and optionally the real duplicity) on two
# datasets: one large file and a tree of many small files. Prints one line per run:
#   tool  operation  dataset  seconds  MB/s  peak-RSS-MB
#
# Usage: bench/bench.sh [--file-gib N] [--entries N] [--duplicity] [--work DIR]
#   --file-gib N   size of the large file in GiB (default 10)
#   --entries N    entries of the tree: N/1000 directories of 1000 files (default 1000000)
#   --duplicity    also time the real duplicity ($DUPLICITY or scripts/setup.sh) on the same data
#   --work DIR     scratch folder (default: a new folder under /var/tmp); needs ~3x the data
set -euo pipefail
cd "$(dirname "$0")/.."

FILE_GIB=10
ENTRIES=1000000
WITH_DUP=0
WORK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --file-gib) FILE_GIB=$2; shift 2 ;;
        --entries) ENTRIES=$2; shift 2 ;;
        --duplicity) WITH_DUP=1; shift ;;
        --work) WORK=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$WORK" ] || WORK=$(mktemp -d /var/tmp/ferrodup-bench.XXXXXX)
mkdir -p "$WORK"
cargo build --release --locked >&2
BIN=$PWD/target/release/ferrodup
DUP=""
if [ $WITH_DUP = 1 ]; then DUP=${DUPLICITY:-$(bash scripts/setup.sh | tail -n 1)}; fi

# Dataset 1: one large file, half random, half text-like, so gzip does real work.
if [ ! -f "$WORK/large/big.bin" ]; then
    mkdir -p "$WORK/large"
    python3 - "$WORK/large/big.bin" "$FILE_GIB" <<'PY'
import os, sys
path, gib = sys.argv[1], int(sys.argv[2])
chunk = 64 << 20
text = (b"".join(b"line %08d: the quick brown fox jumps over the lazy dog\n" % i for i in range(200000)))[:chunk]
with open(path, "wb") as f:
    for i in range(gib * 16):
        f.write(os.urandom(chunk) if i % 2 == 0 else text)
PY
fi
# Dataset 2: many small files.
if [ ! -d "$WORK/tree" ]; then
    python3 - "$WORK/tree" "$ENTRIES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = 1000
for d in range(max(1, n // per)):
    dd = os.path.join(root, "d%04d" % d)
    os.makedirs(dd)
    for i in range(per):
        with open(os.path.join(dd, "f%04d.txt" % i), "wb") as f:
            f.write(b"file %d/%d\n" % (d, i) * (1 + i % 7))
PY
fi

size_mb() { du -sm --apparent-size "$1" | cut -f1; }

measure() { # tool op dataset mb cmd...
    local tool=$1 op=$2 ds=$3 mb=$4; shift 4
    if ! /usr/bin/time -o "$WORK/time.out" -f "%e %M" "$@" >/dev/null 2>"$WORK/last.err"; then
        echo "FAILED: $tool $op $ds" >&2
        tail -n 5 "$WORK/last.err" >&2
        exit 1
    fi
    local secs rss
    secs=$(tail -n 1 "$WORK/time.out" | cut -d' ' -f1)
    rss=$(( $(tail -n 1 "$WORK/time.out" | cut -d' ' -f2) / 1024 ))
    printf "%-9s %-8s %-6s %8.1f s %8.1f MB/s %6d MB\n" "$tool" "$op" "$ds" "$secs" \
        "$(echo "$mb $secs" | awk '{ if ($2 > 0) print $1/$2; else print 0 }')" "$rss"
}

for ds in large tree; do
    src=$WORK/$ds
    mb=$(size_mb "$src")
    rm -rf "$WORK/t-$ds" "$WORK/c-$ds" "$WORK/r-$ds"
    measure ferrodup full "$ds" "$mb" "$BIN" full --no-encryption --no-print-statistics \
        --archive-dir "$WORK/c-$ds" "$src" "file://$WORK/t-$ds"
    measure ferrodup restore "$ds" "$mb" "$BIN" restore --archive-dir "$WORK/c-$ds" \
        "file://$WORK/t-$ds" "$WORK/r-$ds"
    diff -rq "$src" "$WORK/r-$ds" >/dev/null || { echo "restored $ds differs" >&2; exit 1; }
    rm -rf "$WORK/r-$ds" "$WORK/t-$ds" "$WORK/c-$ds"
    # The same with symmetric encryption (the default when --no-encryption is absent).
    export PASSPHRASE=ferrodup-bench
    measure ferrodup full-enc "$ds" "$mb" "$BIN" full --no-print-statistics \
        --archive-dir "$WORK/c-$ds" "$src" "file://$WORK/t-$ds"
    measure ferrodup rest-enc "$ds" "$mb" "$BIN" restore --archive-dir "$WORK/c-$ds" \
        "file://$WORK/t-$ds" "$WORK/r-$ds"
    diff -rq "$src" "$WORK/r-$ds" >/dev/null || { echo "restored $ds differs" >&2; exit 1; }
    unset PASSPHRASE
    rm -rf "$WORK/r-$ds"
    if [ -n "$DUP" ]; then
        rm -rf "$WORK/dt-$ds" "$WORK/dc-$ds"
        measure duplicity full "$ds" "$mb" "$DUP" full --no-encryption \
            --archive-dir "$WORK/dc-$ds" "$src" "file://$WORK/dt-$ds"
        measure duplicity restore "$ds" "$mb" "$DUP" restore --no-encryption \
            --archive-dir "$WORK/dc-$ds" "file://$WORK/dt-$ds" "$WORK/r-$ds"
        rm -rf "$WORK/r-$ds" "$WORK/dt-$ds" "$WORK/dc-$ds"
        export PASSPHRASE=ferrodup-bench
        measure duplicity full-enc "$ds" "$mb" "$DUP" full \
            --archive-dir "$WORK/dc-$ds" "$src" "file://$WORK/dt-$ds"
        measure duplicity rest-enc "$ds" "$mb" "$DUP" restore \
            --archive-dir "$WORK/dc-$ds" "file://$WORK/dt-$ds" "$WORK/r-$ds"
        unset PASSPHRASE
        rm -rf "$WORK/r-$ds" "$WORK/dt-$ds" "$WORK/dc-$ds"
    fi
    rm -rf "$WORK/t-$ds" "$WORK/c-$ds"
done
echo "work folder: $WORK (remove it when done)" >&2
