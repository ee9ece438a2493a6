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
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests import data_fuzz_cases

WORKER = data_fuzz_cases.__file__
NUM_WORKERS = 2  # the machine's cores
TIME_BUDGET = 900  # seconds for all workers (a hang fails at this point, naming its case)
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


def _run_chunk(cases, first, stop, folder, deadline, outcomes):
    """Runs cases[first:stop] in worker subprocesses, restarting after the case that died."""
    index = {c["id"]: i for i, c in enumerate(cases)}
    restarts = 0
    while first < stop:
        results = os.path.join(folder, f"results-{first}.jsonl")
        stderr_path = os.path.join(folder, f"stderr-{first}.txt")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
        returncode = None
        with open(stderr_path, "wb") as stderr:
            try:
                returncode = subprocess.run(
                    [sys.executable, WORKER, os.path.join(folder, "cases"), results, str(first),
                     str(stop)],
                    stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                    timeout=max(1.0, deadline - time.monotonic()),
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                returncode = None
        running = None
        for event in _events(results):
            if event["event"] == "start":
                running = event["case"]
            elif event["event"] == "done":
                outcomes[event["case"]] = event
                running = None
        if returncode == 0 and running is None:
            return
        with open(stderr_path, "rb") as f:
            tail = f.read()[-1500:].decode(errors="replace")
        if running is None:  # died before the first case or after the last
            for case in cases[first:stop]:
                outcomes.setdefault(case["id"], {"crash": f"worker {_describe_exit(returncode)} "
                                                          f"outside a case: {tail}"})  # fmt: skip
            return
        outcomes[running] = {"crash": f"worker {_describe_exit(returncode)} while reading "
                                      f"this case; stderr: ...{tail[-600:]}"}  # fmt: skip
        first = index[running] + 1
        restarts += 1
        if returncode is None or restarts > MAX_RESTARTS or time.monotonic() > deadline:
            reason = "not run: an earlier case of its worker hung or crashed too often"
            for case in cases[first:stop]:
                outcomes.setdefault(case["id"], {"crash": reason})
            return


def run_all(cases, folder, workers=NUM_WORKERS, budget=TIME_BUDGET):
    """``{case id: done event or {"crash": message}}`` for every case."""
    outcomes = {}
    deadline = time.monotonic() + budget
    bounds = [round(len(cases) * k / workers) for k in range(workers + 1)]
    threads = [
        threading.Thread(target=_run_chunk,
                         args=(cases, bounds[k], bounds[k + 1], folder, deadline, outcomes))
        for k in range(workers)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def _summary(cases, failures, outcomes, seconds):
    table = collections.defaultdict(lambda: [0, 0])
    for case in cases:
        row = table[(case["task"], data_fuzz_cases.mutation_class(case))]
        row[0] += 1
        row[1] += case["id"] not in failures
    lines = [f"{len(cases)} cases in {seconds:.1f} s, {len(cases) - len(failures)} passed"]
    for (task, family), (n, ok) in sorted(table.items()):
        lines.append(f"  {task:15s} {family:22s} {ok:3d}/{n:3d}")
    notes = sorted({n for o in outcomes.values() for n in o.get("notes", [])})
    if notes:
        lines.append("API notes: " + "; ".join(notes))
    slowest = sorted((o.get("seconds", 0), k) for k, o in outcomes.items())[-3:]
    lines.append("slowest cases: " + ", ".join(f"{k} {s:.2f} s" for s, k in slowest))
    return "\n".join(lines)


@pytest.mark.slow
def test_damaged_shards_end_in_a_named_error_or_a_counted_skip(tmp_path):
    cases = data_fuzz_cases.generate_cases()
    assert len(cases) >= 200
    start = time.monotonic()
    outcomes = run_all(cases, str(tmp_path))
    seconds = time.monotonic() - start
    failures = {}
    for case in cases:
        outcome = outcomes.get(case["id"], {"crash": "no outcome recorded"})
        if "crash" in outcome:
            failures[case["id"]] = [outcome["crash"]]
        else:
            problems = data_fuzz_cases.check(case, outcome["observed"])
            if problems:
                failures[case["id"]] = problems
    print(_summary(cases, failures, outcomes, seconds))
    report = "\n".join(f"{cid}: " + " | ".join(p) for cid, p in failures.items())
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n{report}"
