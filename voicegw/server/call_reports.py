"""Where each call's lifecycle events go: the ``call_record`` log line, the CDR file, the webhooks.

`CallReports.records` is the `CallObserver` the SIP user agent tells of every call; it hands its
events here. The CDR file gets one JSON line per call, appended on a writer thread (`DiskWriter`),
so a slow disk never holds the event loop; webhooks are queued for their own tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from voicegw.server.cdr import CallEnded, CallLifecycleEvent, CallRecords
from voicegw.server.metrics import Metrics
from voicegw.server.records import DiskWriter
from voicegw.server.webhooks import WebhookSender, WebhookSettings

log = structlog.get_logger(__name__)


class CallReports:
    """One server's (or one `voicegw call`'s) call records and webhooks; `start`, then `close`."""

    def __init__(
        self,
        *,
        cdr_file: Path | None = None,
        webhooks: WebhookSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cdr_file = cdr_file
        self.records = CallRecords(self._emit)
        self._writer = DiskWriter() if cdr_file is not None else None
        count = metrics.webhook_delivery if metrics is not None else None
        self._webhooks = WebhookSender(webhooks, count) if webhooks is not None else None

    def start(self) -> None:
        """Start the webhook workers (on the running loop)."""
        if self._webhooks is not None:
            self._webhooks.start()

    def _emit(self, event: CallLifecycleEvent) -> None:
        if isinstance(event, CallEnded):
            line = event.record.as_json()
            log.info("call_record", call_id=event.record.call_id, record=line)
            if self._writer is not None:
                self._writer.submit_nowait(self._append, json.dumps(line, ensure_ascii=False))
        if self._webhooks is not None:
            self._webhooks.submit(event)

    def _append(self, line: str) -> None:
        """On the writer thread: one line at the end of the CDR file."""
        assert self.cdr_file is not None
        try:
            self.cdr_file.parent.mkdir(parents=True, exist_ok=True)
            with self.cdr_file.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            log.error("cdr_write_failed", path=str(self.cdr_file), error=str(exc))

    async def close(self) -> None:
        """Record the calls still open, let the last webhooks go out, finish the file."""
        self.records.end_all()
        if self._webhooks is not None:
            await self._webhooks.close()
        if self._writer is not None:
            await self._writer.close()
