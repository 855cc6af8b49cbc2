#!/usr/bin/env bash
# Profiles one ferrodup step on the generated tree (bench/tree.py) with `perf record -g`
# (or, where perf cannot record, valgrind's callgrind) and prints the functions that take
# the most CPU time (self time), to compare before and after a change.
#
# Usage: bench/profile.sh STEP [options]
#   STEP           full, incremental (after the edits), no-change (incremental with nothing
#                  changed) or restore (of the latest backup); the steps before it run
#                  first, unprofiled
#   --scale F      size of the tree (default 0.3: ~177 MB, one volume; 1 = ~591 MB)
#   --seed N       seed of the tree and edits (default 10)
#   --top N        functions printed (default 40)
#   --dwarf        perf call graphs from DWARF (ferrodup has no frame pointers; larger data)
#   --callgrind    valgrind --tool=callgrind even if perf works (slow: use a small --scale)
#   --work DIR     work folder (default /var/tmp/ferrodup-profile; the tree is reused)
# Environment: FERRODUP (a binary to profile instead of a release build of this checkout).
# The profile stays in WORK/profile-STEP-TIME/ (perf.data or callgrind.out) for
# `perf report -i ... --stdio` or `callgrind_annotate`.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

STEP=${1:-}
case "$STEP" in
    full | incremental | no-change | restore) shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "the first argument is the step: full, incremental, no-change or restore (see --help)" ;;
esac
SCALE=0.3
SEED=10
TOP=40
DWARF=0
CALLGRIND=0
WORK=/var/tmp/ferrodup-profile
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --top) TOP=${2:?--top needs a value}; shift 2 ;;
        --dwarf) DWARF=1; shift ;;
        --callgrind) CALLGRIND=1; shift ;;
        --work) WORK=${2:?--work needs a folder}; shift 2 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $TOP =~ ^[1-9][0-9]*$ ]] || die "--top must be a positive number, not $TOP"

FD=$(ferrodup_bin)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
BASE=$(make_tree "$WORK" "$SCALE" "$SEED")
OUT=$WORK/profile-$STEP-$(date +%Y%m%dT%H%M%S)
mkdir -p "$OUT"
SRC=$WORK/src
fresh_source "$BASE" "$SRC"
rm -rf "$WORK/target" "$WORK/cache" "$WORK/restored"
unset PASSPHRASE

# set_cmd KIND: CMD becomes ferrodup's command for KIND (full, incremental or restore).
set_cmd() {
    if [ "$1" = restore ]; then
        CMD=("$FD" restore --no-encryption --archive-dir "$WORK/cache" "file://$WORK/target"
            "$WORK/restored")
    else
        CMD=("$FD" "$1" --no-encryption --archive-dir "$WORK/cache" "$SRC" "file://$WORK/target")
    fi
}
prepare() {
    "${CMD[@]}" >"$OUT/prepare.log" 2>&1 || die "preparing failed: ${CMD[*]} (see $OUT/prepare.log)"
}

# The steps before STEP, then STEP's command in CMD.
set_cmd full
if [ "$STEP" != full ]; then
    prepare
    python3 "$TREE_PY" edit "$SRC" --scale "$SCALE" --seed "$SEED"
    sleep 1
    set_cmd incremental
fi
if [ "$STEP" = no-change ] || [ "$STEP" = restore ]; then
    prepare
    sleep 1
fi
[ "$STEP" != restore ] || set_cmd restore

perf_works() {
    command -v perf >/dev/null || { [ "$(id -u)" = 0 ] && apt_install linux-perf; } || return 1
    perf record -q -o "$OUT/probe.data" -- true >/dev/null 2>&1
}

if [ $CALLGRIND = 0 ] && perf_works; then
    rm -f "$OUT/probe.data"
    GRAPH=(-g)
    [ $DWARF = 0 ] || GRAPH=(--call-graph dwarf)
    note "perf record ${GRAPH[*]}: ${CMD[*]}"
    # The writes of the steps before are flushed first, so that the profile does not show
    # their writeback.
    sync
    sleep 2
    /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak RSS" -o "$OUT/time.txt" \
        perf record "${GRAPH[@]}" -o "$OUT/perf.data" -- "${CMD[@]}" >"$OUT/step.log" 2>&1 ||
        die "the profiled step failed (see $OUT/step.log)"
    echo "$STEP at scale $SCALE: $(cat "$OUT/time.txt") (under perf)"
    echo
    echo "Self time by function (perf report --stdio --no-children), top $TOP:"
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso,symbol \
        --percent-limit 0.3 2>/dev/null | sed -n '/^ *[0-9]/{s/[ -]*$//;p}' | head -n "$TOP"
    echo
    echo "By thread (pid:name) and object (kernel time is [kernel.kallsyms]):"
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort pid,dso \
        --percent-limit 0.3 2>/dev/null | sed -n '/^ *[0-9]/{s/[ -]*$//;p}' | head -n 20
    echo
    echo "perf data: $OUT/perf.data (perf report -i $OUT/perf.data)"
else
    [ $CALLGRIND = 1 ] || note "perf cannot record here: falling back to callgrind"
    command -v valgrind >/dev/null || apt_install valgrind
    note "valgrind --tool=callgrind: ${CMD[*]}"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "${CMD[@]}" \
        >"$OUT/step.log" 2>&1 || die "the profiled step failed (see $OUT/step.log)"
    echo "$STEP at scale $SCALE: instructions by function (callgrind_annotate), top $TOP:"
    callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | awk -v n="$TOP" '
        /PROGRAM TOTALS/ { print }
        /file:function/ { on = 1; getline; next }
        on && NF && n-- > 0'
    echo
    echo "callgrind data: $OUT/callgrind.out (callgrind_annotate $OUT/callgrind.out)"
fi
