"""The GPU timing loop, run on CPU against a fake asynchronous device.

``time_calls`` and the per-layer clock use one code path for both devices; only the event type
differs (``torch.cuda.Event`` or ``HostEvent``).  Here the events come from a fake device whose
work is queued: an event records the queue's virtual time, ``elapsed_time`` is refused until the
host has synchronised, and every call is logged.  So the properties that matter on a GPU are
checked without one: events bracket each call, nothing synchronises inside the timed region, and
the numbers returned are the device's time, not the host's.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import archstat.profiling.layer_timing as layer_timing
import archstat.profiling.timing as timing
from archstat.engine.analyze import analyze_rows
from archstat.profiling.layer_timing import interleaved, trace_records
from archstat.profiling.timing import HostEvent, time_calls


class FakeDevice:
    """Queued work with a virtual clock; only ``sync`` makes finished events readable."""

    def __init__(self) -> None:
        self.now = 0.0  # seconds of device time queued so far
        self.tick = 0.0  # device seconds of the work queued just before each event (op calls not logged)
        self.log: list[str] = []
        self.synced = False

    def enqueue(self, seconds: float) -> None:
        self.now += seconds
        self.synced = False
        self.log.append("call")

    def sync(self, device: torch.device) -> None:
        self.synced = True
        self.log.append("sync")

    def event(self, device: torch.device) -> "FakeEvent":
        return FakeEvent(self)


class FakeEvent:
    def __init__(self, dev: FakeDevice) -> None:
        self.dev, self.t = dev, None

    def record(self) -> None:
        self.dev.now += self.dev.tick
        self.dev.synced = self.dev.synced and not self.dev.tick
        self.t = self.dev.now
        self.dev.log.append("record")

    def elapsed_time(self, end: "FakeEvent") -> float:
        if not self.dev.synced:
            raise RuntimeError("elapsed_time read before the device was synchronised")
        return (end.t - self.t) * 1e3


@pytest.fixture
def fake(monkeypatch) -> FakeDevice:
    dev = FakeDevice()
    monkeypatch.setattr(timing, "new_event", dev.event)
    monkeypatch.setattr(timing, "sync", dev.sync)
    monkeypatch.setattr(layer_timing, "new_event", dev.event)
    monkeypatch.setattr(layer_timing, "sync", dev.sync)
    return dev


def test_time_calls_reports_device_time_and_never_syncs_inside_the_loop(fake):
    durations = iter([0.5, 0.5, 1e-3, 2e-3, 3e-3, 4e-3])  # two warm-up calls, then four timed ones
    times = time_calls(lambda: fake.enqueue(next(durations)), torch.device("cpu"), warmup=2, repeat=4)
    assert times == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3])  # device time, although the host never waited
    timed = fake.log[fake.log.index("sync", fake.log.index("sync") + 1) + 1:]  # after the warm-up syncs
    assert timed == ["record", "call", "record"] * 4 + ["sync"]


def test_time_calls_budget_cuts_repeats_but_keeps_three():
    slow = lambda: sum(range(200_000))  # noqa: E731 - a few ms of host work
    assert len(time_calls(slow, torch.device("cpu"), warmup=1, repeat=50, budget_s=1e-9)) == 3


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1) + 1)


def test_layer_clock_one_sync_per_pass_and_intervals_per_row(fake):
    model = Small().eval()
    graph, records, nodes, _ = trace_records(analyze_rows(model, (3, 8, 8), batch=2))
    fake.tick = 1e-3  # every op call takes 1 ms of device time
    passes, whole = interleaved(model, graph, nodes, torch.randn(2, 3, 8, 8), torch.device("cpu"), warmup=2, repeat=3)
    assert whole == []  # no whole-model call asked for
    assert len(passes) == 3 and all(len(p) == len(records) for p in passes)
    assert all(t == pytest.approx(1e-3) for p in passes for t in p)
    assert fake.log.count("sync") == 2 + 3  # one per pass (warm-up included), none between op calls
    assert fake.log.count("record") == 5 * (len(records) + 1)


def test_interleaved_times_a_whole_model_call_right_before_each_pass(fake):
    """The whole-model calls the layer sum is judged against run between the instrumented passes, each
    bracketed by two events and read after a sync, with the device's time."""
    model = Small().eval()
    graph, records, nodes, _ = trace_records(analyze_rows(model, (3, 8, 8), batch=2))
    fake.tick = 1e-3
    whole = lambda: fake.enqueue(2e-3)  # noqa: E731 - 2 ms of device work, logged as "call"
    passes, whole_s = interleaved(model, graph, nodes, torch.randn(2, 3, 8, 8), torch.device("cpu"),
                                  warmup=1, repeat=3, whole=whole)
    assert len(passes) == 3 and whole_s == pytest.approx([3e-3] * 3)  # its work and the end event's tick
    assert fake.log[0] == "call"  # the whole model is warmed up with the passes
    timed = fake.log[fake.log.index("sync") + 1:]  # after the warm-up pass
    one_pass = ["record"] * (len(records) + 1) + ["sync"]
    assert timed == (["record", "call", "record", "sync"] + one_pass) * 3


def test_host_event_matches_cuda_event_interface():
    a, b = HostEvent(), HostEvent()
    with pytest.raises(RuntimeError, match="never recorded"):
        a.elapsed_time(b)
    a.record()
    b.record()
    assert 0 <= a.elapsed_time(b) < 1e3  # milliseconds, like torch.cuda.Event.elapsed_time
