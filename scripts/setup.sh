#!/usr/bin/env bash
# Installs everything voicegw needs on a Debian machine (as root) into .venv/ at the repository root:
# system packages through apt-get, pjsua2 built from source (scripts/build_pjsua2.sh, cached),
# and the Python packages of pyproject.toml. Safe to run again: it only does what is missing, and a
# run with nothing to do takes seconds.
#
# It prints one line per step; the full output of every step goes to a log file (its path is
# printed first; VOICEGW_SETUP_LOG chooses another). On a failure it prints the end of that log
# and what to do.
#
# Usage: scripts/setup.sh [EXTRAS]   (EXTRAS as in pip, default "local,app"; the tests use "dev,local")
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-local,app}
venv="$root/.venv"
venv_py="$venv/bin/python"
mkdir -p "$venv"
setup_log=${VOICEGW_SETUP_LOG:-$venv/setup.log}
: > "$setup_log"
# What one step hands to the next (a step runs in a subshell of its own, see run_step).
state=$(mktemp -d "${TMPDIR:-/tmp}/voicegw-setup.XXXXXX")
trap 'rm -rf "$state"' EXIT
STEPS=5
step=0
started=$SECONDS

# Tools the server and the tests call: SIPp for load and e2e calls, espeak-ng and sox for test
# audio, chromium for the web app's browser test, swig and the compiler for pjsua2, kamailio and
# systemd-analyze for the deploy/ checks, jemalloc for the server's malloc (deploy/voicegw.service,
# scripts/soak.py).
apt_pkgs=(sip-tester espeak-ng sox chromium swig build-essential dpkg-dev libssl-dev libopus-dev libspeex-dev libspeexdsp-dev libsrtp2-dev python3-dev
    kamailio systemd libjemalloc2)

fail() { # fail HINT: the end of the log and what to do, then exit 1
    echo "failed"
    echo "---- last 30 lines of $setup_log ----"
    tail -n 30 "$setup_log"
    echo "----"
    echo "setup: $1"
    echo "setup: then run scripts/setup.sh again: the steps already done are skipped."
    exit 1
}

# run_step TITLE HINT FUNCTION: one line on the terminal, the function's output in the log.
# The function runs in a subshell with `set -e` of its own, as a plain command: errexit is off in
# anything run as an `if` or `||` condition, so the status is read after it instead (and Ctrl-C
# still reaches a long build, which a background job would not get).
run_step() {
    step=$((step + 1))
    printf '[%d/%d] %s ... ' "$step" "$STEPS" "$1"
    echo "==== [$step/$STEPS] $1" >> "$setup_log"
    local begin=$SECONDS status
    set +e
    (
        set -e
        "$3"
    ) >> "$setup_log" 2>&1
    status=$?
    set -e
    if [ "$status" -ne 0 ]; then
        fail "$2"
    fi
    local note
    note=$(cat "$state/note" 2>/dev/null || true)
    rm -f "$state/note"
    echo "${note:-done} ($((SECONDS - begin)) s)"
}

note() { echo "$*" > "$state/note"; }
# A step that did something says so: a run where none did says there was nothing to do.
worked() { touch "$state/worked"; }

system_packages() {
    local missing=()
    for pkg in "${apt_pkgs[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        note "all present"
        return
    fi
    echo "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    # The package enables its own service, which would take 5060 from voicegw: the tests start
    # kamailio themselves.
    if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now kamailio >/dev/null 2>&1 || true
    fi
    note "installed ${#missing[@]}"
    worked
}

virtualenv() {
    if [ -x "$venv_py" ]; then
        note "present"
        return
    fi
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv_py" -m pip install --upgrade pip setuptools wheel
    note "created"
    worked
}

pjsua2() {
    # scripts/build_pjsua2.sh prints the cached wheel's path, at once when it is cached.
    # Its progress (stderr) goes straight to the log, to be followed there during the long build;
    # a cached wheel writes nothing.
    local wheel before
    before=$(wc -c < "$setup_log")
    wheel=$(bash "$root/scripts/build_pjsua2.sh" "$venv_py")
    if [ "$(wc -c < "$setup_log")" -gt "$before" ]; then
        note "built"
        worked
    else
        note "cached"
    fi
    echo "wheel: $wheel"
    echo "$wheel" > "$state/wheel"
}

python_packages() {
    local wheel stamp_file stamp
    wheel=$(cat "$state/wheel")
    # pyproject.toml, the extras and the wheel decide what pip installs: unchanged, nothing to do.
    stamp_file="$venv/.setup-stamp"
    stamp=$( (cat "$root/pyproject.toml"; echo "$extras"; echo "$wheel") | sha256sum | cut -c1-16)
    if [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
        note "up to date"
        return
    fi
    # llama-cpp-python (the embedded model's LLM) builds from source: portable CPU code, no GPU, no
    # downloader; pip caches the built wheel, so this costs ~6 minutes once per machine.
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAMA_CURL=OFF}"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    # --find-links plus the exact pin in pyproject.toml: pip takes our wheel, never PyPI's pjsua2 sdist.
    "$venv_py" -m pip install --find-links "$(dirname "$wheel")" "$wheel" -e "$root[$extras]"
    # A rebuilt wheel keeps its version (a new source edit, the same pjproject): pip would keep the
    # old one installed, so the wheel in use is recorded and a different one replaces it.
    local installed="$venv/.pjsua2-wheel"
    if [ "$(cat "$installed" 2>/dev/null)" != "$wheel" ]; then
        "$venv_py" -m pip install --no-deps --force-reinstall "$wheel"
        echo "$wheel" > "$installed"
    fi
    echo "$stamp" > "$stamp_file"
    note "installed"
    worked
}

check() {
    "$venv_py" -c "import pjsua2, voicegw"
}

echo "setup: the full output of every step goes to $setup_log"
run_step "system packages (apt-get; about 3 min the first time)" \
    "apt-get could not install them: run as root on Debian 12 with access to its mirrors." system_packages
run_step "Python virtual environment (.venv)" \
    "could not create .venv: install python3-venv (apt-get install python3-venv)." virtualenv
run_step "building pjsua2 (about 10 min, cached afterwards)" \
    "the pjsua2 build failed: the log shows the failing command (scripts/build_pjsua2.sh explains the build)." pjsua2
run_step "installing voicegw[$extras] (llama-cpp-python builds about 6 min once)" \
    "pip failed: check access to PyPI; the log names the package." python_packages
run_step "checking that pjsua2 and voicegw import" \
    "the installation is incomplete: remove $venv and run scripts/setup.sh again." check
[ -e "$state/worked" ] || echo "setup: nothing to do: everything was installed already"
echo "setup: ready in $((SECONDS - started)) s: $venv/bin/voicegw (run '$venv/bin/voicegw doctor' to check this machine)"
