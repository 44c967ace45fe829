#!/usr/bin/env bash
# One-shot set-up for cosim on Debian 12 (bookworm) or 13 (trixie), run as root or with sudo.
# Installs ngspice with OSDI support and libngspice, creates .venv and installs the package.
# Idempotent: a second run checks and returns in a few seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

. /etc/os-release
codename="${VERSION_CODENAME:-}"

ngspice_ok() {
    command -v ngspice >/dev/null 2>&1 || return 1
    ls /usr/lib/*/libngspice.so.0 >/dev/null 2>&1 || return 1
    local ver
    ver="$(ngspice -v 2>/dev/null | grep -oE 'ngspice-[0-9]+' | head -n1 | cut -d- -f2)"
    [ -n "$ver" ] && [ "$ver" -ge 44 ]
}

if ! ngspice_ok; then
    echo "[setup] installing ngspice with OSDI for Debian ${codename}"
    export DEBIAN_FRONTEND=noninteractive
    case "$codename" in
        bookworm)
            src=/etc/apt/sources.list.d/cosim-bookworm-backports.list
            if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
                echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$src" >/dev/null
            fi
            $SUDO apt-get update -qq
            $SUDO apt-get install -y -qq -t bookworm-backports ngspice libngspice0 >/dev/null
            ;;
        *)
            # trixie (ngspice 44.2) and later carry an OSDI-enabled ngspice in main.
            $SUDO apt-get update -qq
            $SUDO apt-get install -y -qq ngspice libngspice0 >/dev/null
            ;;
    esac
    ngspice_ok || { echo "[setup] ngspice >= 44 with libngspice.so.0 not available after install" >&2; exit 1; }
fi

py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1 || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "[setup] installing Python 3 with venv support"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
    py=python3
fi
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$py" -m venv .venv
fi
stamp=.venv/.cosim-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing cosim and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[test,train]"
    echo "$want" > "$stamp"
fi
echo "[setup] ready: $(ngspice -v 2>/dev/null | grep -oE 'ngspice-[0-9.]+' | head -n1), $(.venv/bin/python --version)"
