#!/usr/bin/env bash
# ferrodup against duplicity, restic and borg on the same generated tree (issue 10's
# benchmark): full backup, incremental after "a day of edits", incremental with nothing
# changed, restore of the latest backup; wall and CPU seconds, peak RSS and stored size
# of each, in one markdown table with the ratios to ferrodup. Every restore is compared
# with the source byte for byte (ferrodup and duplicity: modes and mtimes too); a
# difference stops the benchmark.
#
# Usage: bench/compare.sh [options]
#   --scale F      size of the tree: 1 = ~591 MB (default), 0.05 for a quick run
#   --seed N       seed of the tree and of the edits (default 10)
#   --runs N       run everything N times, report the median of each number (default 1)
#   --tools LIST   comma-separated, from ferrodup,duplicity,restic,borg (default: all);
#                  the first is the one the ratios compare with
#   --install      apt-get install restic and borgbackup when missing (else they are skipped)
#   --work DIR     work folder, kept, reused (the tree is generated once per scale and seed)
#   --keep         keep the temporary work folder (default: /var/tmp/ferrodup-compare.*)
#   --describe     print the tree's classes (files, MB, gzip ratio) and digest, then stop
#   --restore-fs   restore into an ext4 file system made afresh for each restore (a loop
#                  device: root, mkfs.ext4). On a file system where the runs before created
#                  and deleted many files, ext4's inode allocator spends seconds of system
#                  time in every tool's restore; this measures the restores without it.
# Environment: FERRODUP (a binary to use instead of a release build of this checkout),
# DUPLICITY (default: the one scripts/setup.sh installs).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SCALE=1
SEED=10
RUNS=1
TOOLS=ferrodup,duplicity,restic,borg
INSTALL=0
RESTORE_FS=0
WORK=""
KEEP=0
DESCRIBE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift 2 ;;
        --install) INSTALL=1; shift ;;
        --work) WORK=${2:?--work needs a folder}; KEEP=1; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --describe) DESCRIBE=1; shift ;;
        --restore-fs) RESTORE_FS=1; shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not $RUNS"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a number, not $SEED"
awk -v s="$SCALE" 'BEGIN { exit !(s + 0 > 0 && s + 0 <= 100) }' ||
    die "--scale must be a number above 0 and at most 100, not $SCALE"

if [ $RESTORE_FS = 1 ]; then
    [ "$(id -u)" = 0 ] || die "--restore-fs mounts a loop device: run as root"
    command -v mkfs.ext4 >/dev/null || apt_install e2fsprogs
fi
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /var/tmp/ferrodup-compare.XXXXXX)
    REMOVE_WORK=1
fi
on_exit() {
    if [ -n "${FS_MOUNT:-}" ] && mountpoint -q "$FS_MOUNT"; then
        umount "$FS_MOUNT"
    fi
    if [ "${REMOVE_WORK:-0}" = 1 ] && [ $KEEP = 0 ]; then
        rm -rf "$WORK"
    fi
}
trap on_exit EXIT
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ $DESCRIBE = 1 ]; then
    python3 "$TREE_PY" describe "$(make_tree "$WORK" "$SCALE" "$SEED")"
    exit 0
fi
need_gnu_time

# The tools to run, each with its version.
declare -A VERSION
SELECTED=()
IFS=, read -r -a WANTED <<<"$TOOLS"
for tool in "${WANTED[@]}"; do
    case "$tool" in
        ferrodup)
            FD=$(ferrodup_bin)
            VERSION[$tool]=$("$FD" --version | sed -n 's/.*(\(ferrodup [^)]*\)).*/\1/p') ||
                die "$FD --version failed: is it ferrodup?"
            [ -n "${FERRODUP:-}" ] || VERSION[$tool]+=" ($(git -C "$REPO_DIR" describe --always --dirty))"
            ;;
        duplicity)
            DUP=$(duplicity_bin)
            VERSION[$tool]="duplicity $("$DUP" --version | awk '{ print $2 }')" ||
                die "$DUP --version failed: is it duplicity?"
            ;;
        restic | borg)
            pkg=$tool
            [ "$tool" = borg ] && pkg=borgbackup
            if ! command -v "$tool" >/dev/null; then
                if [ $INSTALL = 1 ]; then
                    apt_install "$pkg"
                else
                    note "$tool is not installed: skipped (--install installs it)"
                    continue
                fi
            fi
            if [ "$tool" = restic ]; then
                VERSION[$tool]=$(restic version | awk '{ print $1, $2 }')
            else
                VERSION[$tool]=$(borg --version)
            fi
            ;;
        *) die "unknown tool $tool: choose from ferrodup,duplicity,restic,borg" ;;
    esac
    SELECTED+=("$tool")
done
[ ${#SELECTED[@]} -gt 0 ] || die "no tool to run"
BASE=$(make_tree "$WORK" "$SCALE" "$SEED")

# restic always encrypts; from 0.17 on it takes an empty password with --insecure-no-password.
RESTIC_OPTS=()
if [ -n "${VERSION[restic]:-}" ]; then
    if printf '0.17.0\n%s\n' "$(restic version | awk '{ print $2 }')" | sort -V -C; then
        unset RESTIC_PASSWORD
        RESTIC_OPTS=(--insecure-no-password)
    else
        export RESTIC_PASSWORD=ferrodup-bench
    fi
fi
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset PASSPHRASE

SRC=$WORK/src
RESULTS=$WORK/results.txt
: >"$RESULTS"

# backup TOOL DIR KIND: one backup (KIND full or incremental) of SRC into DIR's target.
backup() {
    local tool=$1 d=$2 kind=$3
    case "$tool" in
        ferrodup) timed "$d/log" "$FD" "$kind" --no-encryption --archive-dir "$d/cache" \
            "$SRC" "file://$d/target" ;;
        duplicity) timed "$d/log" "$DUP" "$kind" --no-encryption --archive-dir "$d/cache" \
            "$SRC" "file://$d/target" ;;
        restic) timed "$d/log" restic "${RESTIC_OPTS[@]}" -r "$d/target" --cache-dir "$d/cache" \
            backup "$SRC" ;;
        borg) timed "$d/log" env BORG_BASE_DIR="$d/cache" borg create "$d/target::$kind-$(date +%s)" \
            "$SRC" ;;
    esac
}

# fresh_fs DIR: DIR becomes the mount point of a new, empty ext4 file system three times
# the size of the tree (with --restore-fs).
fresh_fs() {
    if [ -n "${FS_MOUNT:-}" ] && mountpoint -q "$FS_MOUNT"; then
        umount "$FS_MOUNT"
    fi
    local img=$WORK/restore-fs.img
    rm -f "$img"
    truncate -s $(($(bytes_of "$BASE") * 3 + 268435456)) "$img"
    mkfs.ext4 -q -F "$img" || die "mkfs.ext4 $img failed"
    mkdir -p "$1"
    mount -o loop "$img" "$1" || die "cannot mount $img on $1"
    FS_MOUNT=$1
}

# restore TOOL DIR: restores the latest backup; prints where the source's copy is.
restore() {
    local tool=$1 d=$2
    if [ $RESTORE_FS = 1 ]; then
        fresh_fs "$d/restored"
    else
        mkdir -p "$d/restored"
    fi
    case "$tool" in
        ferrodup) timed "$d/log" "$FD" restore --no-encryption --archive-dir "$d/cache" \
            "file://$d/target" "$d/restored/src" ;;
        duplicity) timed "$d/log" "$DUP" restore --no-encryption --archive-dir "$d/cache" \
            "file://$d/target" "$d/restored/src" ;;
        restic) timed "$d/log" restic "${RESTIC_OPTS[@]}" -r "$d/target" --cache-dir "$d/cache" \
            restore latest --target "$d/restored" ;;
        borg)
            local last
            last=$(BORG_BASE_DIR="$d/cache" borg list --short --last 1 "$d/target")
            # shellcheck disable=SC2016 # the inner bash expands $1 and $2
            timed "$d/log" env BORG_BASE_DIR="$d/cache" bash -c 'cd "$1" && exec borg extract "$2"' \
                _ "$d/restored" "$d/target::$last"
            ;;
    esac
}

restored_copy() { # TOOL DIR
    case "$1" in
        ferrodup | duplicity) echo "$2/restored/src" ;;
        *) echo "$2/restored/${SRC#/}" ;;
    esac
}

run_tool() { # TOOL RUN
    local tool=$1 d=$WORK/run-$1
    rm -rf "$d"
    mkdir -p "$d"
    fresh_source "$BASE" "$SRC"
    case "$tool" in
        restic) restic "${RESTIC_OPTS[@]}" -r "$d/target" --cache-dir "$d/cache" init >"$d/log" 2>&1 ||
            die "restic init failed: $(tail -n 3 "$d/log")" ;;
        borg) BORG_BASE_DIR="$d/cache" borg init --encryption none "$d/target" >"$d/log" 2>&1 ||
            die "borg init failed: $(tail -n 3 "$d/log")" ;;
    esac
    backup "$tool" "$d" full
    record "$RESULTS" file "$tool" full "$(bytes_of "$d/target")"
    python3 "$TREE_PY" edit "$SRC" --scale "$SCALE" --seed "$SEED"
    sleep 1 # a new second: duplicity names sets by their time
    backup "$tool" "$d" incremental
    record "$RESULTS" file "$tool" incremental "$(bytes_of "$d/target")"
    sleep 1
    backup "$tool" "$d" incremental
    record "$RESULTS" file "$tool" no-change "$(bytes_of "$d/target")"
    restore "$tool" "$d"
    record "$RESULTS" file "$tool" restore -
    local meta=()
    case "$tool" in ferrodup | duplicity) meta=(--meta) ;; esac
    if ! python3 "$TREE_PY" compare "$SRC" "$(restored_copy "$tool" "$d")" "${meta[@]}" >&2; then
        KEEP=1
        die "the $tool restore differs from the source (run $2; kept in $d)"
    fi
    if [ $RESTORE_FS = 1 ]; then
        umount "$FS_MOUNT"
        rm -f "$WORK/restore-fs.img"
    fi
    rm -rf "$d"
}

for run in $(seq 1 "$RUNS"); do
    for tool in "${SELECTED[@]}"; do
        run_tool "$tool" "$run"
    done
done
rm -rf "$SRC"

read -r FILES MB < <(find "$BASE" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s / 1e6 }')
VERSIONS=$(for t in "${SELECTED[@]}"; do printf '%s; ' "${VERSION[$t]}"; done)
TITLE="Local file:// target, generated tree: scale $SCALE, seed $SEED, $FILES files, $MB MB; \
$(nproc) cores; ${VERSIONS%; }; no encryption (restic: always encrypted). \
Wall and CPU in seconds, RSS of the largest process, stored = the target's bytes after the step."
python3 "$TREE_PY" table "$RESULTS" --title "$TITLE" | tee "$WORK/table.md"
[ $KEEP = 0 ] || note "work folder: $WORK (results.txt, table.md)"
