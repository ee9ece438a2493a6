"""Fuzz: damaged shards of every task end in a named error or a counted skip, never a crash.

Valid shards of every task variant (classification raw and PNG, segmentation with PNG masks,
detection with boxes; GZIP and uncompressed) are damaged by seeded mutations (bit flips in
each field of a record's frame, cuts inside a record and at record boundaries, crafted
lengths with a valid length CRC, garbage after the last record, 0-byte shards, damage inside
the GZIP stream; records re-serialised with a feature of the wrong type, a missing feature,
labels out of range, lossy or out-of-range or wrongly sized masks, bad boxes and classes,
image bytes disagreeing with the header), see ``tests/data_fuzz_cases.py`` for each case's
expectation. The reads run in worker subprocesses that log one JSON line per case, so a
crash (a signal, an abort) or a hang fails this test naming the case, and the run resumes
after it.
"""

import collections
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests import data_fuzz_cases

WORKER = data_fuzz_cases.__file__
NUM_WORKERS = 2  # the machine's cores
TIME_BUDGET = 300  # seconds for all workers (a hang fails at this point, naming its case)
MAX_RESTARTS = 12  # crashes survived per worker before the rest of its cases count as not run


def _events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash
            break
    return out


def _describe_exit(returncode):
    if returncode is None:
        return "timed out (killed)"
    if returncode < 0:
        try:
            return f"died of {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died of signal {-returncode}"
    return f"exited with status {returncode}"


def _run_chunk(units, first, stop, folder, deadline, events):
    """Runs units[first:stop] in worker subprocesses, restarting after a unit that died;
    ``events[n]``: unit n's ``done`` event, or ``{"crash": message}``."""
    restarts = 0
    while first < stop:
        results = os.path.join(folder, f"results-{first}.jsonl")
        stderr_path = os.path.join(folder, f"stderr-{first}.txt")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
        with open(stderr_path, "wb") as stderr:
            try:
                returncode = subprocess.run(
                    [sys.executable, WORKER, os.path.join(folder, "cases"), results, str(first),
                     str(stop), os.path.join(folder, "cases.pickle")],
                    stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                    timeout=max(1.0, deadline - time.monotonic()),
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                returncode = None
        running = None
        for event in _events(results):
            if event["event"] == "start":
                running = event["unit"]
            elif event["event"] == "done":
                events[event["unit"]] = event
                running = None
        if returncode == 0 and running is None:
            return
        with open(stderr_path, "rb") as f:
            tail = " ".join(f.read()[-600:].decode(errors="replace").split())
        if running is None:  # died before the first unit or after the last
            running = next((n for n in range(first, stop) if n not in events), stop)
            if running == stop:
                return
        what = f"the worker {_describe_exit(returncode)} during this read; stderr: ...{tail}"
        events[running] = {"crash": what}
        first = running + 1
        restarts += 1
        if returncode is None or restarts > MAX_RESTARTS or time.monotonic() > deadline:
            for n in range(first, stop):
                events.setdefault(n, {"crash": "not run: an earlier read of its worker hung "
                                                "or crashed too often"})  # fmt: skip
            return


def run_all(cases, folder, workers=NUM_WORKERS, budget=TIME_BUDGET):
    """``{case id: {"strict" | "skip" | "verify": read}}`` for every case; a read is what
    the worker observed or ``{"crash": message}``."""
    units = data_fuzz_cases.units(cases)
    with open(os.path.join(folder, "cases.pickle"), "wb") as f:
        pickle.dump(cases, f)  # the workers read exactly these cases
    events = {}
    deadline = time.monotonic() + budget
    # Chunks of whole groups (a group's strict reads, then its skip and verify reads).
    ends = [n + 1 for n, (kind, _) in enumerate(units) if kind == "verify"]
    bounds = [0]
    for k in range(1, workers):
        bounds.append(min(ends, key=lambda e: abs(e - len(units) * k / workers)))
    bounds.append(len(units))
    threads = [
        threading.Thread(target=_run_chunk,
                         args=(units, bounds[k], bounds[k + 1], folder, deadline, events))
        for k in range(workers) if bounds[k] < bounds[k + 1]
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    groups = collections.defaultdict(list)
    for case in cases:
        groups[case["group"]].append(case["id"])
    observed = {c["id"]: {} for c in cases}
    for n, (kind, key) in enumerate(units):
        event = events.get(n, {"crash": "no outcome recorded"})
        ids = [key] if kind == "strict" else groups[key]
        for cid in ids:
            if "crash" in event:
                observed[cid][kind] = {"crash": event["crash"]}
            else:
                observed[cid][kind] = event["reads"][cid]
    return observed, events


def _summary(cases, failures, observed, events, seconds):
    table = collections.defaultdict(lambda: [0, 0])
    for case in cases:
        row = table[(case["task"], data_fuzz_cases.mutation_class(case))]
        row[0] += 1
        row[1] += case["id"] not in failures
    lines = [f"{len(cases)} cases in {seconds:.1f} s, {len(cases) - len(failures)} passed"]
    for (task, family), (n, ok) in sorted(table.items()):
        lines.append(f"  {task:15s} {family:22s} {ok:3d}/{n:3d}")
    ends = collections.Counter(
        (o.get("strict") or {}).get("error") or "no error" for o in observed.values()
    )
    lines.append("strict reads ended in: " + ", ".join(f"{k} {v}" for k, v in ends.items()))
    per_kind = collections.defaultdict(float)
    units = data_fuzz_cases.units(cases)
    for n, event in events.items():
        per_kind[units[n][0]] += event.get("seconds", 0)
    lines.append("worker seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in per_kind.items()))
    return "\n".join(lines)


@pytest.mark.slow
def test_damaged_shards_end_in_a_named_error_or_a_counted_skip(tmp_path):
    cases = data_fuzz_cases.generate_cases()
    assert len(cases) >= 200
    start = time.monotonic()
    observed, events = run_all(cases, str(tmp_path))
    seconds = time.monotonic() - start
    root = str(tmp_path / "cases")
    failures = {}
    for case in cases:
        problems = data_fuzz_cases.check(case, observed[case["id"]], root)
        if problems:
            failures[case["id"]] = problems
    print(_summary(cases, failures, observed, events, seconds))
    report = "\n".join(f"{cid}: " + " | ".join(p) for cid, p in failures.items())
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n{report}"


@pytest.mark.slow
def test_a_worker_that_dies_fails_the_read_it_was_in_and_the_run_goes_on(tmp_path, monkeypatch):
    cases = [c for c in data_fuzz_cases.generate_cases() if c["group"] == "cls_raw-raw"][:2]
    monkeypatch.setenv("DATA_FUZZ_CRASH_UNIT", "1")  # the second case's strict read
    observed, events = run_all(cases, str(tmp_path), workers=1, budget=300)
    assert "died of SIGSEGV" in events[1]["crash"]
    first, second = (observed[c["id"]] for c in cases)
    assert "crash" not in first["strict"] and "crash" in second["strict"]
    assert "crash" not in second["skip"] and "crash" not in second["verify"]  # resumed
    problems = data_fuzz_cases.check(cases[1], second, str(tmp_path / "cases"))
    assert problems[0].startswith("strict read: the worker died of SIGSEGV during this read")
