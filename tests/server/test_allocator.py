"""The server's malloc: jemalloc by executing itself again with it preloaded, unless configured off."""

from __future__ import annotations

from pathlib import Path

from voicegw.server.allocator import REEXEC_MARK, InUse, Reexec, decide, jemalloc_loaded
from voicegw.testing.harness import EchoServer

LIBRARY = "libjemalloc.so.2"


def test_jemalloc_is_preloaded_by_executing_again() -> None:
    decision = decide("jemalloc", loaded=False, library=LIBRARY, environ={"PATH": "/bin"})
    assert decision == Reexec({"PATH": "/bin", "LD_PRELOAD": LIBRARY, REEXEC_MARK: "1"})


def test_the_environments_preloads_and_jemalloc_options_are_kept() -> None:
    environ = {"LD_PRELOAD": "libother.so", "MALLOC_CONF": "narenas:1"}
    decision = decide("jemalloc", loaded=False, library=LIBRARY, environ=environ)
    assert isinstance(decision, Reexec)
    assert decision.env["LD_PRELOAD"] == f"libother.so {LIBRARY}"
    assert decision.env["MALLOC_CONF"] == "narenas:1"


def test_no_second_execution_when_loaded_configured_off_missing_or_failed() -> None:
    assert decide("jemalloc", loaded=True, library=LIBRARY, environ={}) == InUse("jemalloc")
    assert decide("system", loaded=False, library=LIBRARY, environ={}) == InUse("system")
    assert decide("system", loaded=True, library=LIBRARY, environ={}) == InUse(
        "jemalloc", "preloaded by the environment"
    )
    missing = decide("jemalloc", loaded=False, library=None, environ={})
    assert isinstance(missing, InUse) and missing.name == "system" and "not installed" in missing.reason
    failed = decide("jemalloc", loaded=False, library=LIBRARY, environ={REEXEC_MARK: "1"})
    assert isinstance(failed, InUse) and failed.name == "system" and "failed" in failed.reason


def allocator_of(
    tmp_path: Path, config: str = "", env: dict[str, str] | None = None
) -> tuple[bool, dict[str, object]]:
    """Start `voicegw serve --echo`: jemalloc in its maps, and its `allocator` log line."""
    server = EchoServer("voicegw", tmp_path, config=config, env=env or {})
    try:
        server.wait_ready()
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    finally:
        assert server.stop(), server.output()
    line = next(e for e in server.log_events() if e.get("event") == "allocator")
    return jemalloc_loaded(maps), line


def test_a_started_server_runs_on_jemalloc_and_says_so(tmp_path: Path) -> None:
    loaded, line = allocator_of(tmp_path, env={"MALLOC_CONF": "narenas:2"})
    assert loaded
    assert line["allocator"] == "jemalloc" and line["level"] == "info"
    assert line["malloc_conf"] == "narenas:2"


def test_allocator_system_keeps_glibcs_malloc(tmp_path: Path) -> None:
    loaded, line = allocator_of(tmp_path, "[server]\nallocator = 'system'\n")
    assert not loaded
    assert line["allocator"] == "system" and line["level"] == "info"
