"""Summing the server's and its workers' metrics into one exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from voicegw.server.workers.metrics_sum import sum_expositions


def _registry(calls: int, latencies: list[float]) -> str:
    registry = CollectorRegistry()
    counter = Counter("voicegw_barge_ins", "Barge-ins.", ["agent"], registry=registry)
    counter.labels(agent="a").inc(calls)
    histogram = Histogram("voicegw_turn_latency_seconds", "Latency.", buckets=(0.5, 1.0), registry=registry)
    for value in latencies:
        histogram.observe(value)
    return generate_latest(registry).decode()


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_counters_and_histograms_add_up_and_creation_times_are_left_out() -> None:
    summed = _samples(sum_expositions([_registry(2, [0.2]), _registry(3, [0.7, 2.0]), ""]))
    assert summed[("voicegw_barge_ins_total", (("agent", "a"),))] == 5
    assert summed[("voicegw_turn_latency_seconds_count", ())] == 3
    assert summed[("voicegw_turn_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert summed[("voicegw_turn_latency_seconds_bucket", (("le", "1.0"),))] == 2
    assert summed[("voicegw_turn_latency_seconds_sum", ())] == pytest.approx(2.9)
    assert not [name for name, _ in summed if name.endswith("_created")]


def test_a_snapshot_that_does_not_parse_is_left_out() -> None:
    summed = _samples(sum_expositions([_registry(2, []), 'voicegw_barge_ins_total{agent="a" 7 garbage\n']))
    assert summed[("voicegw_barge_ins_total", (("agent", "a"),))] == 2
