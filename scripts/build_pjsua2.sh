#!/usr/bin/env bash
# Builds the pjsua2 Python module from pjproject's source with raised call limits and prints
# the path of the cached wheel.
#
# Why from source: the PyPI wheel is compiled with PJSUA_MAX_CALLS = 4, so a 5th concurrent
# INVITE gets 486 however UaConfig.maxCalls is set. The one pjproject source reachable from the
# package registries is inside Debian's `ring` (Jami) source package (pjproject 2.12.1);
# Debian stripped its bundled gsm/ilbc/speex/g7221, hence the --disable flags below. Nothing
# of pjproject is ever copied into this repository: it is fetched and built under the cache.
# Opus is enabled although voicegw does its own media: pjsua checks an incoming offer against
# its own codec list before the application sees the call, and answers 488 to an Opus-only one.
#
# Usage: scripts/build_pjsua2.sh PYTHON   (the interpreter the wheel is built for)
set -euo pipefail

PYTHON=${1:-python3}
CACHE=${VOICEGW_CACHE:-$HOME/.cache/voicegw}
here=$(cd "$(dirname "$0")" && pwd)
pytag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(sha256sum "$here/build_pjsua2.sh" | cut -c1-12)
out="$CACHE/pjsua2-$key-$pytag"

wheel=$(ls "$out"/pjsua2-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
    echo "$wheel"
    exit 0
fi

log() { echo "build_pjsua2: $*" >&2; }

need=()
for pkg in dpkg-dev swig libssl-dev libopus-dev build-essential; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src source for bookworm"
    cat > /etc/apt/sources.list.d/voicegw-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq >&2
fi
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get install -y -qq "${need[@]}" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pjsua2-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "fetching Debian's ring source package"
apt-get source --download-only ring >&2 2>/dev/null || apt-get source --download-only ring >&2
orig=$(ls ring_*.orig.tar.* | head -n 1)
tar xf "$orig" --wildcards '*/tarballs-unpacked/pjproject-*'
src=$(ls -d ./*/daemon/contrib/tarballs-unpacked/pjproject-*/pjproject-* | head -n 1)
cd "$src"

cat > pjlib/include/pj/config_site.h <<'CFG'
/* voicegw: a server, not a phone. */
#define PJSUA_MAX_CALLS            1024
#define PJSUA_MAX_CONF_PORTS       (PJSUA_MAX_CALLS + 64)
#define PJ_IOQUEUE_MAX_HANDLES     4096
#define PJSUA_MAX_PLAYERS          1100
#define PJSUA_MAX_RECORDERS        1100
#define PJ_HAS_IPV6                1
#define PJMEDIA_HAS_SRTP           1
CFG

log "configuring"
./configure --disable-shared --disable-sound --disable-video --enable-epoll \
    --disable-gsm-codec --disable-ilbc-codec --disable-speex-codec --disable-speex-aec \
    --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-libwebrtc \
    --disable-libyuv --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 \
    --disable-bcg729 --disable-upnp --with-ssl --with-opus \
    CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC" >&2
log "building pjproject"
make dep >/dev/null 2>&1 || true
make -j"$(nproc)" >&2
log "building the Python module"
cd pjsip-apps/src/swig/python
make pjsua2_wrap.cpp >&2
"$PYTHON" -m pip wheel --no-deps --no-build-isolation -w dist . >&2 2>/dev/null \
    || "$PYTHON" -c "import setuptools, sys; sys.argv = ['setup.py', 'bdist_wheel']; exec(open('setup.py').read())" >&2
mkdir -p "$out"
cp dist/pjsua2-*.whl "$out/"
ls "$out"/pjsua2-*.whl | head -n 1
