"""Prometheus metrics of one `voicegw serve` process, served on ``GET /metrics``.

Each `Metrics` owns its `CollectorRegistry` (not prometheus_client's global one), so two
servers in one process, or one per test, never share or clash over counters. The SIP user
agent tells it of call outcomes (`CallObserver`); an agent call's session events and result
add the conversation's figures (turn latency, barge-ins, model errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from voicegw.contracts.latency import GATEWAY_LATENCY, Direction, LatencyHistogram
from voicegw.contracts.model import ModelError, ModelResponseDone
from voicegw.realtime.events import RealtimeAudioInterrupted, RealtimeError, RealtimeRawModelEvent
from voicegw.realtime.result import RealtimeResult
from voicegw.sip.call import SipCall

SETUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)


class Metrics:
    """The process's counters, gauges and histograms, in a registry of its own."""

    def __init__(self, active_calls: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_active = Gauge(
            "voicegw_calls_active", "Calls in progress (set up, ringing or answered).", registry=r
        )
        if active_calls is not None:
            self.calls_active.set_function(active_calls)
        self.calls = Counter(
            "voicegw_calls",
            "INVITEs by outcome (answered, rejected, cancelled, failed) and final status code.",
            ["outcome", "status"],
            registry=r,
        )
        self.calls_ended = Counter(
            "voicegw_calls_ended", "Answered calls that ended, by reason.", ["reason"], registry=r
        )
        self.call_setup = Histogram(
            "voicegw_call_setup_seconds",
            "From the INVITE to our 200 OK (ringing and answer_delay included).",
            buckets=SETUP_BUCKETS,
            registry=r,
        )
        self.turn_latency = Histogram(
            "voicegw_turn_latency_seconds",
            "From the end of the caller's turn to the agent's first audio (observed when the call ends).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_stage = Histogram(
            "voicegw_model_stage_seconds",
            "Stage latencies the model measured itself per response (stt, llm_first_token, ...).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.barge_ins = Counter(
            "voicegw_barge_ins", "Agent speech cut off (barge-in, guardrail, interrupt).", registry=r
        )
        self.model_errors = Counter(
            "voicegw_model_errors", "Errors the model reported, by whether they ended the session.",
            ["fatal"], registry=r,
        )  # fmt: skip
        self.model_faults = Counter(
            "voicegw_model_faults",
            "Model failures a caller would notice, by cause: refused with 503 before answering "
            "(model_connect_timeout, model_unreachable) or apologised for and hung up (model_lost, "
            "model_stalled, internal_error).",
            ["cause"],
            registry=r,
        )
        self.sessions_ended = Counter(
            "voicegw_sessions_ended", "Agent sessions that ended, by end reason.", ["reason"], registry=r
        )
        self.rtp_received = Counter(
            "voicegw_rtp_packets_received", "Media packets received (counted as each call ends).", registry=r
        )
        self.rtp_lost = Counter(
            "voicegw_rtp_packets_lost", "Media packets lost on the way in (RFC 3550, per call at its end).",
            registry=r,
        )  # fmt: skip
        self.rtp_concealed = Counter(
            "voicegw_rtp_frames_concealed", "Caller frames made up by packet loss concealment.", registry=r
        )
        self.rtp_jitter = Histogram(
            "voicegw_rtp_jitter_seconds", "Interarrival jitter of each call's caller stream at its end.",
            buckets=JITTER_BUCKETS, registry=r,
        )  # fmt: skip
        self.rtp_dropped = Counter(
            "voicegw_rtp_datagrams_dropped",
            "Inbound RTP/RTCP datagrams dropped, by reason: foreign_address and foreign_ssrc (not the "
            "latched source), probation, srtp_auth, malformed ones, overflow (per call at its end).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.setup_failures = Counter(
            "voicegw_call_setup_failures",
            "Incoming calls whose set-up failed (error) or hung until the watchdog ended it (timeout).",
            ["cause"], registry=r,
        )  # fmt: skip
        self.webhook_deliveries = Counter(
            "voicegw_webhook_deliveries",
            "Webhook deliveries by event and outcome: delivered, rejected (a 4xx), failed (retries "
            "exhausted), dropped (queue full or server stopped).",
            ["event", "outcome"], registry=r,
        )  # fmt: skip
        r.register(_GatewayLatencyCollector(GATEWAY_LATENCY))
        self._rejected: set[str] = set()

    def count_refusals(self, refused: Mapping[tuple[str, int], int]) -> None:
        """Expose `refused` (the signalling policy's counts by method and status, kept up to date
        by it) as ``voicegw_sip_refused_total``: requests refused before pjsua saw them."""
        self.registry.register(_RefusalCollector(refused))

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type (`voicegw.server.http.MetricsSource`)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # --- the SIP user agent's CallObserver ----------------------------------------------------

    def call_rejected(self, call: SipCall, status: int) -> None:
        self._rejected.add(call.call_id)
        self.calls.labels(outcome="rejected", status=str(status)).inc()

    def call_setup_failed(self, call: SipCall, cause: str) -> None:
        self.setup_failures.labels(cause=cause).inc()

    def call_started(self, call: SipCall) -> None:
        """Nothing to count: the outcome says it."""

    def call_answered(self, call: SipCall) -> None:
        if call.info.direction != "inbound":
            return  # calls we dial are not INVITEs we answered
        self.calls.labels(outcome="answered", status="200").inc()
        answered = call.answered_at if call.answered_at is not None else call.created_at
        self.call_setup.observe(max(0.0, answered - call.created_at))

    def call_ended(self, call: SipCall, status: int) -> None:
        if call.info.direction != "inbound":
            return  # calls we dial are not INVITEs we answered
        if call.call_id in self._rejected:
            self._rejected.discard(call.call_id)
            return
        if call.answered_at is None:
            # Never answered nor rejected by us: the caller gave up, or setting it up failed.
            outcome = "cancelled" if status == 487 else "failed"
            self.calls.labels(outcome=outcome, status=str(status)).inc()
            return
        self.calls_ended.labels(reason=call.end_reason or "unknown").inc()
        if call.endpoint is not None:
            stats = call.endpoint.stats
            self.rtp_received.inc(stats.get("packets_in", 0))
            self.rtp_lost.inc(max(0, stats.get("lost", 0)))
            self.rtp_concealed.inc(stats.get("frames_concealed", 0))
            if stats.get("packets_in"):
                self.rtp_jitter.observe(stats.get("jitter_ms", 0.0) / 1000)
            dropped = {**stats.get("bad_packets_by_reason", {})}
            dropped["overflow"] = stats.get("datagrams_overflow", 0) + stats.get("candidates_overflow", 0)
            for reason, count in dropped.items():
                if count:
                    self.rtp_dropped.labels(reason=reason).inc(count)

    def webhook_delivery(self, event: str, outcome: str) -> None:
        """One webhook delivery's outcome (`voicegw.server.webhooks.Counter`)."""
        self.webhook_deliveries.labels(event=event, outcome=outcome).inc()

    # --- an agent session -----------------------------------------------------------------------

    def session_event(self, event: object) -> None:
        """One event of an agent session (`async for event in session`)."""
        match event:
            case RealtimeAudioInterrupted():
                self.barge_ins.inc()
            case RealtimeError(error=ModelError(fatal=fatal)):
                self.model_errors.labels(fatal=str(fatal).lower()).inc()
            case RealtimeRawModelEvent(data=ModelResponseDone(timings_ms=timings)):
                for stage, ms in timings.items():
                    self.model_stage.labels(stage=stage).observe(ms / 1000)

    def session_ended(self, result: RealtimeResult) -> None:
        """The session's result: its turn latencies and how it ended."""
        for ms in result.timings.turn_latencies_ms:
            self.turn_latency.observe(ms / 1000)
        self.sessions_ended.labels(reason=result.end_reason or "unknown").inc()


class _GatewayLatencyCollector(Collector):
    """Reads the process's gateway latency samples (`voicegw.contracts.latency`) at each scrape:
    the media path records them without a lock or a label look-up."""

    def __init__(self, histograms: Mapping[Direction, LatencyHistogram]) -> None:
        self.histograms = histograms

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "voicegw_gateway_latency_seconds",
            "Time audio spends inside voicegw: inbound from a caller's RTP packet arriving to its "
            "audio sent to the model, outbound from the model's audio received to its first RTP "
            "packet sent (audio queued behind earlier audio is not timed).",
            labels=["direction"],
        )
        for direction, histogram in self.histograms.items():
            buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
            family.add_metric([direction.value], buckets, histogram.sum)
        yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class _RefusalCollector(Collector):
    """Reads the policy's own counts at each scrape: the policy stays free of prometheus."""

    def __init__(self, refused: Mapping[tuple[str, int], int]) -> None:
        self.refused = refused

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "voicegw_sip_refused",
            "Requests the signalling policy refused statelessly, by method and status.",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(self.refused.items()):
            family.add_metric([method, str(status)], count)
        yield family
