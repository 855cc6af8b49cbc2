#!/usr/bin/env bash
# Builds ferrodup and runs a real (encrypted) backup of a directory to a local file://
# target, an incremental after a change, and a restore, then checks the restored tree is
# identical.
# Usage: scripts/demo.sh [SOURCE_DIR]   (default: this repository's src/ folder)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
BIN=$PWD/target/release/ferrodup
SRC=$(realpath "${1:-src}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -a "$SRC" "$WORK/source"
TARGET="file://$WORK/backups"
# Encrypted, as by default; set PASSPHRASE to choose your own.
export PASSPHRASE=${PASSPHRASE:-ferrodup-demo-passphrase}
"$BIN" full --archive-dir "$WORK/cache" "$WORK/source" "$TARGET"
echo "an edit after the full backup" >> "$WORK/source/ferrodup-demo.txt"
sleep 1
"$BIN" incremental --archive-dir "$WORK/cache" "$WORK/source" "$TARGET"
"$BIN" collection-status --archive-dir "$WORK/cache" "$TARGET"
"$BIN" restore --archive-dir "$WORK/cache" "$TARGET" "$WORK/restored"
"$BIN" verify --compare-data --archive-dir "$WORK/cache" "$TARGET" "$WORK/source"
diff -r "$WORK/source" "$WORK/restored"
echo "demo: backup, incremental and restore of $SRC are identical"
ls -l "$WORK/backups"
