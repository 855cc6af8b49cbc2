#!/usr/bin/env bash
# Installs what ferrodup's tests need on a Debian machine (idempotent): strace (the tests
# inject read errors with it), the C toolchain and librsync headers (for duplicity's
# extension), GnuPG, and the real duplicity from PyPI in a virtualenv (with the Swift, S3
# and SSH client libraries its swift://, pca://, s3:// and sftp:// backends use). Prints the
# path of the duplicity binary on its last line.
set -euo pipefail

VENV=${FERRODUP_VENV:-$HOME/.cache/ferrodup/venv}
DUPLICITY_VERSION=${DUPLICITY_VERSION:-3.2.1}

sudo_if_needed() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in gcc librsync-dev gnupg python3-venv python3-dev strace rclone par2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -x "$VENV/bin/duplicity" ]; then
    echo "setup: installing duplicity $DUPLICITY_VERSION into $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2 || /usr/bin/python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "duplicity==$DUPLICITY_VERSION" >&2
fi
# duplicity's swift:// and pca:// backends need python-swiftclient and, for Keystone v3,
# keystoneclient. pip alone settles on an old keystoneclient/oslo.config that crash on
# Python 3.10+; the current ones build only without build isolation.
if ! "$VENV/bin/python" -c 'import swiftclient, keystoneclient' 2>/dev/null; then
    echo "setup: installing the Swift and Keystone clients into $VENV" >&2
    PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
    "${PIP[@]}" python-swiftclient >&2
    "${PIP[@]}" "setuptools<70" wheel pbr >&2
    "${PIP[@]}" --no-build-isolation -U python-keystoneclient oslo.config keystoneauth1 \
        oslo.utils oslo.i18n oslo.serialization >&2
fi
# duplicity's s3:// backend uses boto3, its sftp:// backend paramiko.
if ! "$VENV/bin/python" -c 'import boto3, paramiko' 2>/dev/null; then
    echo "setup: installing boto3 and paramiko into $VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check boto3 paramiko >&2
fi
"$VENV/bin/duplicity" --version >&2
echo "$VENV/bin/duplicity"
