#!/usr/bin/env bash
# What 50 selection rules cost a real backup: times `ferrodup full --no-encryption` of a
# tree without rules and with the 50 rules of benches/select.rs (wall, user, system
# seconds and peak RSS).
#
# Usage: bench/select-full.sh [TREE]
#   TREE  the directory to back up (default: the tree `cargo bench --bench select` made,
#         target/bench-select-1000000; run that first)
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=$(realpath "${1:-target/bench-select-1000000}")
[ -d "$TREE" ] || { echo "no tree at $TREE: run cargo bench --bench select first" >&2; exit 2; }
cargo build --release --locked >&2
BIN=$PWD/target/release/ferrodup
WORK=$(mktemp -d /var/tmp/ferrodup-select.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RULES=()
for k in 0 1 2 3 4; do RULES+=(--include "$TREE/d00$k*/src/**.rs"); done
for k in $(seq -w 0 14); do RULES+=(--exclude "$TREE/d0${k}9/cache"); done
for k in $(seq 0 9); do RULES+=(--exclude "**/*.tmp$k"); done
for k in $(seq 0 7); do RULES+=(--exclude "ignorecase:**/thumbs$k.db"); done
for k in $(seq 0 10); do RULES+=(--exclude-regexp "\\.bak$k\$"); done
RULES+=(--exclude '**/*.never')
/usr/bin/time -f "full, no rules:  %e s wall, %U s user, %S s system, %M KB peak RSS" \
    "$BIN" full --no-encryption --archive-dir "$WORK/c1" "$TREE" "file://$WORK/t1" >/dev/null
/usr/bin/time -f "full, $(( ${#RULES[@]} / 2 )) rules: %e s wall, %U s user, %S s system, %M KB peak RSS" \
    "$BIN" full --no-encryption --archive-dir "$WORK/c2" "${RULES[@]}" "$TREE" "file://$WORK/t2" >/dev/null
