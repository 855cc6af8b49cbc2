# Shared by bench/compare.sh, bench/remote.sh and bench/profile.sh (sourced, not run).
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
TREE_PY=$BENCH_DIR/tree.py

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

note() {
    echo "${0##*/}: $*" >&2
}

apt_install() { # packages...
    [ "$(id -u)" = 0 ] || die "install $* (apt-get install -y $*), then run again"
    note "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 ||
        { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2; } ||
        die "apt-get install $* failed"
}

need_gnu_time() {
    [ -x /usr/bin/time ] || apt_install time
}

# The ferrodup binary: $FERRODUP if set, else a release build of this checkout.
ferrodup_bin() {
    if [ -n "${FERRODUP:-}" ]; then
        [ -x "$FERRODUP" ] || die "FERRODUP=$FERRODUP is not an executable"
        echo "$FERRODUP"
        return
    fi
    (cd "$REPO_DIR" && nice cargo build --release --locked >&2) || die "cargo build --release failed"
    echo "$REPO_DIR/target/release/ferrodup"
}

# The real duplicity: $DUPLICITY if set, else the one scripts/setup.sh installs.
duplicity_bin() {
    if [ -n "${DUPLICITY:-}" ]; then
        [ -x "$DUPLICITY" ] || die "DUPLICITY=$DUPLICITY is not an executable"
        echo "$DUPLICITY"
        return
    fi
    bash "$REPO_DIR/scripts/setup.sh" | tail -n 1
}

# make_tree WORK SCALE SEED: the generated tree, made once per work folder; prints its path.
make_tree() {
    local base="$1/tree-$2-$3"
    if [ ! -d "$base" ]; then
        note "generating the tree (scale $2, seed $3) in $base"
        rm -rf "$base.partial"
        python3 "$TREE_PY" generate "$base.partial" --scale "$2" --seed "$3" || die "tree generation failed"
        mv "$base.partial" "$base"
    fi
    echo "$base"
}

# fresh_source BASE SRC: SRC becomes a copy of BASE (modes and mtimes kept).
fresh_source() {
    rm -rf "$2"
    cp -a "$1" "$2"
}

# timed LOG CMD...: runs CMD (stdout and stderr to LOG) under GNU time; sets T_WALL,
# T_CPU (user + system seconds) and T_RSS (peak KiB of the largest process). A failure
# shows the end of LOG and stops the benchmark. The writes of the steps before (the copy
# of the tree, the last backup, deleted folders) are flushed first, so that no step pays
# for the writeback of another.
timed() {
    local log=$1
    shift
    sync
    sleep 2
    if ! /usr/bin/time -o "$log.time" -f "%e %U %S %M" "$@" >"$log" 2>&1; then
        echo "--- end of $log:" >&2
        tail -n 15 "$log" >&2
        # shellcheck disable=SC2034 # the exit trap of compare.sh and remote.sh reads it
        KEEP=1
        die "failed: $*"
    fi
    read -r T_WALL T_USER T_SYS T_RSS < <(tail -n 1 "$log.time")
    T_CPU=$(awk -v u="$T_USER" -v s="$T_SYS" 'BEGIN { printf "%.2f", u + s }')
    export T_WALL T_CPU T_RSS
}

# record RESULTS GROUP TOOL STEP STORED: appends the last timed run (STORED: bytes or -).
record() {
    echo "$2 $3 $4 $T_WALL $T_CPU $T_RSS $5" >>"$1"
    printf '%s: %-18s %-12s %6.2f s wall %6.2f s CPU %6d MiB\n' "$2" "$3" "$4" "$T_WALL" "$T_CPU" \
        $((T_RSS / 1024)) >&2
}

bytes_of() {
    du -sb "$1" | cut -f1
}
