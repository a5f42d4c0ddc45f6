"""The server's metrics and its workers', summed into one Prometheus exposition.

Each process keeps its own registry; the workers send theirs as text (`MetricsSnapshot`). The
sum adds every sample of the same name and labels: counters and histograms add up as they should,
and the only gauges (calls in progress, workers up) are the server's own (a worker's are zero).
Creation timestamps (``*_created``) mean nothing summed and are left out. A snapshot that does
not parse (a broken worker) is logged and left out, never an error of the scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

CREATED_SUFFIX = "_created"


def sum_expositions(texts: Iterable[str]) -> bytes:
    """One exposition holding the sum of `texts` (Prometheus text format each)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError as exc:
            log.warning("metrics_snapshot_dropped", reason=str(exc)[:200])
            continue
        for family in parsed:
            if family.name.endswith(CREATED_SUFFIX) and family.type == "gauge":
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                if sample.name.endswith(CREATED_SUFFIX):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry()
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
