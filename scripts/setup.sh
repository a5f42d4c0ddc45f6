#!/usr/bin/env bash
# Installs everything voicegw needs on a Debian machine (as root) into .venv/ at the repository root:
# system packages through apt-get, pjsua2 built from source (scripts/build_pjsua2.sh, cached),
# and the Python packages of pyproject.toml. Safe to run again: it only does what is missing.
#
# Usage: scripts/setup.sh [EXTRAS]   (EXTRAS as in pip, default "local"; the tests use "dev,local")
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-local}
log() { echo "setup: $*" >&2; }

# Tools the server and the tests call: SIPp for load and e2e calls, espeak-ng and sox for test
# audio, chromium for the web app's browser test, swig and the compiler for pjsua2, kamailio and
# systemd-analyze for the deploy/ checks, jemalloc for the server's malloc (deploy/voicegw.service,
# scripts/soak.py).
apt_pkgs=(sip-tester espeak-ng sox chromium swig build-essential dpkg-dev libssl-dev libopus-dev libspeex-dev libspeexdsp-dev libsrtp2-dev python3-dev
    kamailio systemd libjemalloc2)
missing=()
for pkg in "${apt_pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    # The package enables its own service, which would take 5060 from voicegw: the tests start
    # kamailio themselves.
    if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now kamailio >/dev/null 2>&1 || true
    fi
fi

python=${PYTHON:-python3}
if [ ! -x "$root/.venv/bin/python" ]; then
    log "creating $root/.venv"
    "$python" -m venv "$root/.venv"
fi
venv_py="$root/.venv/bin/python"
"$venv_py" -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v '^WARNING: Location' >&2 || true

wheel=$(bash "$root/scripts/build_pjsua2.sh" "$venv_py")
# llama-cpp-python (the embedded model's LLM) builds from source: portable CPU code, no GPU, no
# downloader; pip caches the built wheel, so this costs ~6 minutes once per machine.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
wheel_dir=$(dirname "$wheel")
log "installing voicegw[$extras] with $wheel"
# --find-links plus the exact pin in pyproject.toml: pip takes our wheel, never PyPI's pjsua2 sdist.
"$venv_py" -m pip install -q --find-links "$wheel_dir" "$wheel" -e "$root[$extras]" 2>&1 \
    | grep -v '^WARNING: Location' >&2 || true
# A rebuilt wheel keeps its version (a new source edit, the same pjproject): pip would keep the
# old one installed, so the wheel in use is recorded and a different one replaces it.
installed="$root/.venv/.pjsua2-wheel"
if [ "$(cat "$installed" 2>/dev/null)" != "$wheel" ]; then
    "$venv_py" -m pip install -q --no-deps --force-reinstall "$wheel" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    echo "$wheel" > "$installed"
fi
"$venv_py" -c "import pjsua2, voicegw" || { log "the installation is incomplete"; exit 1; }
log "ready: $root/.venv/bin/voicegw"
