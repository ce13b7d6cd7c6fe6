"""``--record-detail summary``: counts and failures exact, percentiles within the histogram's bound."""

from __future__ import annotations

import math
import random
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jabberemu.rundata import DetailLevel, LatencyHistogram, RecordType, RequestAggregator, RunDataSink
from jabberemu.rundata.histogram import GROWTH, RELATIVE_ERROR, ZERO_BUCKET, bucket_of, bucket_value
from jabberemu.rundata.records import RequestSummaryRecord

QS = (0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def test_the_stated_bound() -> None:
    assert RELATIVE_ERROR == pytest.approx(math.sqrt(1.02) - 1) and RELATIVE_ERROR < 0.01
    for v in (0.0011, 0.5, 1.0, 1.02, 3.7, 250.0, 30_000.0, 3.6e7):
        k = bucket_of(v)
        assert GROWTH ** (k - 1) < v <= GROWTH ** k * (1 + 1e-9)
        assert abs(bucket_value(k) - v) <= RELATIVE_ERROR * v * (1 + 1e-9)
    assert bucket_of(0.0) == ZERO_BUCKET and bucket_value(ZERO_BUCKET) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_percentiles_within_the_bound_of_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = np.concatenate([rng.lognormal(1.0, 0.6, 5000), rng.exponential(40.0, 500),
                              rng.uniform(0, 30_000, 20 if seed % 2 else 0)])
    h = LatencyHistogram()
    h.extend(samples.tolist())
    assert h.count == samples.size and h.max_ms == samples.max() and h.min_ms == samples.min()
    assert h.sum_ms == pytest.approx(float(samples.sum()))
    for q in QS:
        exact = float(np.percentile(samples, q))
        assert abs(h.percentile(q) - exact) <= RELATIVE_ERROR * exact + 1e-12, q


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
       st.sampled_from(QS))
def test_bound_holds_for_any_samples(values: list[float], q: float) -> None:
    h = LatencyHistogram()
    h.extend(values)
    exact = float(np.percentile(np.asarray(values), q))
    assert abs(h.percentile(q) - exact) <= RELATIVE_ERROR * exact + 1e-9


def test_merge_is_exact_and_wire_round_trips() -> None:
    rng = random.Random(3)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(2000):
        v = rng.lognormvariate(0, 1)
        (a if i % 3 else b).add(v)
        both.add(v)
    a.merge(b)
    assert a == both
    back = LatencyHistogram.from_wire(a.to_wire(), sum_ms=a.sum_ms, min_ms=a.min_ms, max_ms=a.max_ms)
    assert back == a and back.percentile(99) == a.percentile(99)


def test_aggregator_counts_failures_by_cause_per_second_and_key() -> None:
    agg = RequestAggregator()
    rng = random.Random(7)
    truth: dict[tuple[int, str, str | None], list[tuple[float, bool, str | None]]] = {}
    for i in range(3000):
        ts = 1_000.0 + rng.uniform(0, 5)
        name = rng.choice(["ping", "message-latency"])
        node = rng.choice(["imp1", "imp2", None])
        ok = rng.random() > 0.1
        cause = None if ok else rng.choice(["timeout:ping", "connection-reset", None])
        rt = rng.expovariate(1 / 20)
        agg.add(ts, "xmpp", name, node, rt, ok, cause)
        truth.setdefault((math.floor(ts), name, node), []).append((rt, ok, cause))
    early = agg.take(1_003.0)  # seconds 1000-1002 ended
    assert {r.ts for r in early} == {1000.0, 1001.0, 1002.0}
    rest = agg.take(None)
    assert agg.open_seconds == 0 and agg.take(None) == []
    got = {(int(r.ts), r.name, r.node): r for r in early + rest}
    assert set(got) == set(truth)
    for key, samples in truth.items():
        r = got[key]
        assert r.count == len(samples) and r.hist.count == len(samples)
        causes: dict[str, int] = {}
        for _, ok, cause in samples:
            if not ok:
                causes[cause or "unknown"] = causes.get(cause or "unknown", 0) + 1
        assert dict(r.failures) == causes
        values = np.asarray([s[0] for s in samples])
        assert r.hist.max_ms == values.max()
        for q in (50, 95, 99):
            exact = float(np.percentile(values, q))
            assert abs(r.hist.percentile(q) - exact) <= RELATIVE_ERROR * exact


def test_a_late_request_reopens_its_second_and_readers_add_up() -> None:
    agg = RequestAggregator()
    agg.add(10.2, "xmpp", "ping", "n", 1.0, True, None)
    (first,) = agg.take(12.0)
    agg.add(10.9, "xmpp", "ping", "n", 3.0, False, "timeout:ping")  # came after its second was taken
    (second,) = agg.take(12.0)
    assert (first.ts, second.ts, first.count + second.count, second.failures) == (10.0, 10.0, 2, {"timeout:ping": 1})


def test_threads_adding_while_the_pump_takes_lose_nothing() -> None:
    agg = RequestAggregator()
    n_threads, per_thread = 4, 5000
    taken: list[RequestSummaryRecord] = []
    done = threading.Event()

    def add(k: int) -> None:
        for i in range(per_thread):
            agg.add(100.0 + (i % 50) * 0.1, "xmpp", "ping", f"n{k % 2}", float(i % 17), i % 11 != 0, "timeout:ping")

    def pump() -> None:
        while not done.is_set():
            taken.extend(agg.take(None))

    threads = [threading.Thread(target=add, args=(k,)) for k in range(n_threads)]
    taker = threading.Thread(target=pump)
    taker.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    taker.join()
    taken.extend(agg.take(None))
    assert sum(r.count for r in taken) == n_threads * per_thread
    failures_per_thread = sum(1 for i in range(per_thread) if i % 11 == 0)
    assert sum(r.failures.get("timeout:ping", 0) for r in taken) == n_threads * failures_per_thread


def test_summary_detail_keeps_every_login_record_whole() -> None:
    sink = RunDataSink(detail=DetailLevel.SUMMARY)
    for i in range(20):
        ts = 50.0 + i * 0.3
        sink.emit(RecordType.REQUEST, ts, client="a", request_type="xmpp", name="ping", node="n1",
                  response_time_ms=2.0, ok=True, error=None, cause=None)
        sink.emit(RecordType.REQUEST, ts, client="a", request_type="soap", name="session-login", node="n1",
                  response_time_ms=20.0, ok=True, error=None, cause=None)
        sink.emit(RecordType.WAIT, ts, client="a", wait_s=1.0, lower_s=0.5, upper_s=2.0, round=1)
    sink.close()
    full = sink.of_type(RecordType.REQUEST)
    assert [r["name"] for r in full] == ["session-login"] * 20
    assert len(sink.of_type(RecordType.WAIT)) == 20
    summaries = sink.of_type(RecordType.REQUEST_SUMMARY)
    assert sum(s["count"] for s in summaries) == 20
    assert [s["ts"] for s in summaries] == [50.0, 51.0, 52.0, 53.0, 54.0, 55.0]
