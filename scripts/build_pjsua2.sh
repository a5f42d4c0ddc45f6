#!/usr/bin/env bash
# Builds the pjsua2 Python module from pjproject 2.17's source with raised limits and voicegw's
# request guard compiled in, and prints the path of the cached wheel.
#
# Why from source: the PyPI wheel is compiled with PJSUA_MAX_CALLS = 4, so a 5th concurrent
# INVITE gets 486 however UaConfig.maxCalls is set. pjproject 2.17 reaches us inside Debian's
# `asterisk` source package (unstable only: a deb-src line for that suite is added, for
# `apt-get source` alone; binary packages still come from bookworm). Debian strips the bundled
# gsm/ilbc/speex/g7221/srtp/resample code, hence the --disable and --with-external flags (the
# external Speex check compiles against libspeex-dev's headers), and
# removed pjmedia-audiodev/bdimad_dev.c, which the makefile still lists: an empty file stands in
# (that device is disabled). Nothing of pjproject is ever copied into this repository: it is
# fetched and built under the cache.
# Opus is enabled although voicegw does its own media: pjsua checks an incoming offer against
# its own codec list before the application sees the call, and answers 488 to an Opus-only one.
#
# Hardening (docs/security.md):
# - Packet limits. PJSIP_MAX_PKT_LEN bounds both one UDP datagram and one TCP/TLS message (it is
#   the receive buffer of every transport): at pjsip's default 4,000 a larger UDP INVITE was cut
#   (its body lost) and a larger TCP one never answered. 65,536 holds any UDP datagram and a
#   60 KB message over TCP.
# - Assertion policy: built with NDEBUG, so PJ_DEBUG is 0: pj_assert() logs "Assert failed" at
#   level 1 (voicegw's log, as an error) and goes on, and PJ_ASSERT_RETURN returns its error code
#   (PJ_ENABLE_EXTRA_CHECK stays on). A peer's message must never be able to abort the process
#   and every call on it; the assertions that a peer could reach are fixed at their root below
#   and in voicegw, and the log line makes any other one visible to the fuzzers.
# - Source edits (checked: the build stops if pjproject's code no longer matches). pjsua2's
#   Endpoint::on_incoming_call frees the cloned INVITE after the application's onIncomingCall
#   without checking it is still there. When the application refuses an INVITE that carries no
#   SDP offer (a missing blank line, a cut datagram, a delayed offer), pjsua sends the final
#   response at once, the call is reset inside the callback, and reset_call() has already freed
#   the clone: pjsip_rx_data_free_cloned(NULL) asserted and aborted the process. The edit frees
#   it only if it is still there. And pjsua_im.c prints an incoming MESSAGE's Content-Type into a
#   256-byte stack buffer with snprintf and passes on the length snprintf *wanted*: a longer
#   Content-Type made pjsua2's on_pager2 copy that many bytes from the stack (an over-read of the
#   stack into the message's parameters; a 60 KB one crossed the end of the stack: SIGSEGV,
#   found by scripts/fuzz_sip.py). The edit keeps the length within the buffer. And
#   pjmedia_sdp_parse skips a body's leading newlines before its PJ_TRY, with no end check: a body
#   of newlines alone (an INVITE over TCP with "Content-Length: 2" and CRLFs after it) scanned
#   past its end, the scanner threw with no handler, and pjlib's longjmp to a NULL context was a
#   SIGSEGV (also found by scripts/fuzz_sip.py). The edit stops at the end of the body.
# - Send buffers sized to the message (memory, not hardening; docs/architecture.md, "Memory"):
#   pjsip_tx_data_encode printed every outgoing message into a buffer of PJSIP_MAX_PKT_LEN, and a
#   finished transaction keeps its last message for retransmissions (32 s over UDP), so 64 KiB
#   per message stayed allocated, about 40 MB at 20 new calls a second. The edit prints into a
#   buffer that fits one increment of the message's pool (3,872 bytes) and only a message too long
#   for it into a new PJSIP_MAX_PKT_LEN one (a first print or a re-print of a message that grew);
#   nothing else in pjsip writes into that buffer beyond its own allocation (raw sends size theirs).
# - voicegw/sip/native/request_guard.c is compiled into the extension (it must share pjsip's
#   static state): a pjsip module ahead of the transaction layer that lets voicegw refuse a
#   request statelessly before pjsua creates anything for it (voicegw/sip/pjguard.py).
#
# The wheel is cached under a key hashing this script and every file it compiles in: a change to
# either builds anew.
#
# Usage: scripts/build_pjsua2.sh PYTHON   (the interpreter the wheel is built for)
set -euo pipefail

PYTHON=${1:-python3}
CACHE=${VOICEGW_CACHE:-$HOME/.cache/voicegw}
here=$(cd "$(dirname "$0")" && pwd)
native="$here/../voicegw/sip/native"
pytag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(cat "$here/build_pjsua2.sh" "$native"/*.c | sha256sum | cut -c1-12)
out="$CACHE/pjsua2-$key-$pytag"

wheel=$(ls "$out"/pjsua2-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
    echo "$wheel"
    exit 0
fi

log() { echo "build_pjsua2: $*" >&2; }

need=()
for pkg in dpkg-dev swig libssl-dev libopus-dev libspeex-dev libspeexdsp-dev libsrtp2-dev build-essential; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ! grep -rqs '^Suites:.*unstable' /etc/apt/sources.list.d/voicegw-unstable-src.sources; then
    log "adding a deb-src source for unstable (pjproject 2.17 is in Debian's asterisk source package)"
    cat > /etc/apt/sources.list.d/voicegw-unstable-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: unstable
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
log "fetching Debian's asterisk source package"
apt-get source --download-only asterisk/unstable >&2 2>/dev/null || apt-get source --download-only asterisk/unstable >&2
tar xf asterisk_*.orig-Xpjproject.tar.xz
src=$(ls -d ./*pjproject*/ | head -n 1)
cd "$src"
grep -q 'PJ_VERSION_MINOR  *:= *17$' version.mak || { log "expected pjproject 2.17 in $src"; exit 1; }
: > pjmedia/src/pjmedia-audiodev/bdimad_dev.c

"$PYTHON" - pjsip/src/pjsua2/endpoint.cpp <<'PATCH'
import sys
path = sys.argv[1]
text = open(path).read()
old = """    acc->onIncomingCall(prm);

    /* Free cloned rdata. */
    pjsip_rx_data_free_cloned(call->incoming_data);
    call->incoming_data = NULL;
"""
new = """    acc->onIncomingCall(prm);

    /* voicegw: the callback may have ended the call, and reset_call() freed the clone. */
    if (call->incoming_data) {
        pjsip_rx_data_free_cloned(call->incoming_data);
        call->incoming_data = NULL;
    }
"""
if text.count(old) != 1:
    sys.exit("build_pjsua2: pjsua2's on_incoming_call changed; review the voicegw edit")
open(path, "w").write(text.replace(old, new))
PATCH

"$PYTHON" - pjsip/src/pjsua-lib/pjsua_im.c <<'PATCH'
import sys
path = sys.argv[1]
text = open(path).read()
old = """            if (mime_type.slen < 1)
                mime_type.slen = 0;
"""
new = """            if (mime_type.slen < 1)
                mime_type.slen = 0;
            /* voicegw: snprintf returns the length it wanted, not the length it wrote. */
            else if (mime_type.slen >= (pj_ssize_t)sizeof(buf))
                mime_type.slen = sizeof(buf) - 1;
"""
if text.count(old) != 1:
    sys.exit("build_pjsua2: pjsua_im.c's MESSAGE Content-Type changed; review the voicegw edit")
open(path, "w").write(text.replace(old, new))
PATCH

"$PYTHON" - pjmedia/src/pjmedia/sdp.c <<'PATCH'
import sys
path = sys.argv[1]
text = open(path).read()
old = """    while (*scanner.curptr=='\\r' || *scanner.curptr=='\\n')
        pj_scan_get_char(&scanner);
"""
new = """    /* voicegw: not past the body's end: pj_scan_get_char throws there, and no PJ_TRY is set yet. */
    while (!pj_scan_is_eof(&scanner) &&
           (*scanner.curptr=='\\r' || *scanner.curptr=='\\n'))
        pj_scan_get_char(&scanner);
"""
if text.count(old) != 1:
    sys.exit("build_pjsua2: pjmedia_sdp_parse's leading newlines changed; review the voicegw edit")
open(path, "w").write(text.replace(old, new))
PATCH

"$PYTHON" - pjsip/src/pjsip/sip_transport.c <<'PATCH'
import sys
path = sys.argv[1]
# Compared without trailing blanks (pjsip's lines carry some).
text = "\n".join(line.rstrip() for line in open(path).read().split("\n"))
edits = [
    (
        """/*
 * Print the SIP message to transmit data buffer's internal buffer.
 */
PJ_DEF(pj_status_t) pjsip_tx_data_encode(pjsip_tx_data *tdata)
{
    /* Allocate buffer if necessary. */
    if (tdata->buf.start == NULL) {
        PJ_USE_EXCEPTION;

        PJ_TRY {
            tdata->buf.start = (char*)
                               pj_pool_alloc(tdata->pool, PJSIP_MAX_PKT_LEN);
        }
        PJ_CATCH_ANY {
            return PJ_ENOMEM;
        }
        PJ_END

        tdata->buf.cur = tdata->buf.start;
        tdata->buf.end = tdata->buf.start + PJSIP_MAX_PKT_LEN;
    }
""",
        """/* voicegw: a message is printed into a buffer that fits one of the tdata pool's increments,
 * and only one that overflows it gets PJSIP_MAX_PKT_LEN: a finished transaction keeps its
 * tdata (over UDP, 32 s), so 64 KiB per message was megabytes at a few calls a second.
 */
#define VOICEGW_TX_BUF_LEN  (PJSIP_POOL_INC_TDATA - 128 < PJSIP_MAX_PKT_LEN ? \\
                             PJSIP_POOL_INC_TDATA - 128 : PJSIP_MAX_PKT_LEN)

static pj_status_t voicegw_tx_buf_alloc(pjsip_tx_data *tdata, pj_size_t len)
{
    PJ_USE_EXCEPTION;

    PJ_TRY {
        tdata->buf.start = (char*) pj_pool_alloc(tdata->pool, len);
    }
    PJ_CATCH_ANY {
        return PJ_ENOMEM;
    }
    PJ_END

    tdata->buf.cur = tdata->buf.start;
    tdata->buf.end = tdata->buf.start + len;
    return PJ_SUCCESS;
}

/*
 * Print the SIP message to transmit data buffer's internal buffer.
 */
PJ_DEF(pj_status_t) pjsip_tx_data_encode(pjsip_tx_data *tdata)
{
    /* Allocate buffer if necessary. */
    if (tdata->buf.start == NULL &&
        voicegw_tx_buf_alloc(tdata, VOICEGW_TX_BUF_LEN) != PJ_SUCCESS)
    {
        return PJ_ENOMEM;
    }
""",
    ),
    (
        """        size = pjsip_msg_print( tdata->msg, tdata->buf.start,
                                tdata->buf.end - tdata->buf.start);
""",
        """        /* pjsip_msg_print() and the line below write a NUL after the message, where a
         * message that fills the buffer has no room: a byte is kept for it.
         */
        size = pjsip_msg_print( tdata->msg, tdata->buf.start,
                                tdata->buf.end - tdata->buf.start - 1);
        /* Too long for the small buffer (first print, or a re-print of a message that
         * grew): print it again into the full one; the small one goes with the pool.
         */
        if (size < 0 && tdata->buf.end - tdata->buf.start < PJSIP_MAX_PKT_LEN) {
            if (voicegw_tx_buf_alloc(tdata, PJSIP_MAX_PKT_LEN) != PJ_SUCCESS)
                return PJ_ENOMEM;
            size = pjsip_msg_print( tdata->msg, tdata->buf.start,
                                    tdata->buf.end - tdata->buf.start - 1);
        }
""",
    ),
]
for old, new in edits:
    if text.count(old) != 1:
        sys.exit("build_pjsua2: sip_transport.c's pjsip_tx_data_encode changed; review the voicegw edit")
    text = text.replace(old, new)
open(path, "w").write(text)
PATCH

cat > pjlib/include/pj/config_site.h <<'CFG'
/* voicegw: a server, not a phone. */
#define PJSUA_MAX_CALLS            1024
#define PJSUA_MAX_CONF_PORTS       (PJSUA_MAX_CALLS + 64)
#define PJ_IOQUEUE_MAX_HANDLES     4096
#define PJSUA_MAX_PLAYERS          1100
#define PJSUA_MAX_RECORDERS        1100
#define PJ_HAS_IPV6                1
#define PJMEDIA_HAS_SRTP           1
/* One UDP datagram or one TCP/TLS message, whole (see build_pjsua2.sh). */
#define PJSIP_MAX_PKT_LEN          65536
CFG

log "configuring"
./configure --disable-shared --disable-sound --disable-video --enable-epoll \
    --disable-gsm-codec --disable-ilbc-codec --disable-speex-codec --disable-speex-aec \
    --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-libwebrtc \
    --disable-libyuv --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 \
    --disable-bcg729 --disable-upnp --with-ssl --with-opus \
    --enable-speex-resample --with-external-speex --with-external-srtp \
    LIBS=-lspeexdsp CFLAGS="-O2 -fPIC -DNDEBUG" CXXFLAGS="-O2 -fPIC -DNDEBUG" >&2
log "building pjproject"
make dep >/dev/null 2>&1 || true
make -j"$(nproc)" >&2
log "building the Python module"
cd pjsip-apps/src/swig/python
cp "$native"/*.c .
sources=$(cd "$native" && printf ', "%s"' *.c)
sed -i "s|\[\"pjsua2_wrap.cpp\"\]|[\"pjsua2_wrap.cpp\"$sources]|" setup.py
grep -q 'request_guard.c' setup.py || { log "could not add voicegw's sources to setup.py"; exit 1; }
make pjsua2_wrap.cpp >&2
"$PYTHON" -m pip wheel --no-deps --no-build-isolation -w dist . >&2 2>/dev/null \
    || "$PYTHON" -c "import setuptools, sys; sys.argv = ['setup.py', 'bdist_wheel']; exec(open('setup.py').read())" >&2
mkdir -p "$out"
cp dist/pjsua2-*.whl "$out/"
ls "$out"/pjsua2-*.whl | head -n 1
