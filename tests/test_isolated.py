"""A stage in a process of its own (riskstrat.stages.isolated): its result, progress, errors and
memory come back as if it had run here, and its Arrow memory is kept for reuse inside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from riskstrat.errors import KeyMissingError, ResourceError
from riskstrat.stages import clock
from riskstrat.stages.isolated import JEMALLOC_CONF_ENV, KEEP_ARROW_MEMORY, in_own_process
from riskstrat.stages.resources import as_resource_error, named_stage

from .conftest import REPO


def _work(n: int, progress=None) -> dict:
    """Counts to ``n`` with progress at each step; says which process it ran in and how jemalloc was set."""
    for i in range(n):
        if progress is not None:
            progress("table", i + 1)
    return {"pid": os.getpid(), "sum": sum(range(n)), "conf": os.environ.get(JEMALLOC_CONF_ENV)}


def _fail_with_key_error(progress=None) -> None:
    err = KeyMissingError("no key: set RISKSTRAT_PSEUDONYM_KEY")
    err.riskstrat_audited = True
    raise err


@named_stage("pseudonymise")
def _run_out_of_memory(progress=None) -> None:
    raise MemoryError("std::bad_alloc")


class _Unpicklable(Exception):
    def __init__(self, message, handle):
        super().__init__(message)
        self.handle = handle


def _fail_unpicklably(progress=None) -> None:
    raise _Unpicklable("a bug", handle=lambda: None)


def _killed(progress=None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hold_memory(megabytes: int, progress=None) -> int:
    block = bytearray(megabytes << 20)  # zero-filled: every page touched
    progress("held", megabytes)  # the parent measures while this is held
    return len(block)


def _arrow_faults(progress=None) -> int:
    """Page faults of ten 64 MB Arrow buffers, each freed before the next (the first not counted)."""
    import resource

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    pool = pa.jemalloc_memory_pool()
    values = pa.array(np.arange(1 << 23, dtype=np.int64))
    pc.add(values, 1, memory_pool=pool)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        result = pc.add(values, 1, memory_pool=pool)
        del result
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_the_result_and_progress_come_back_from_another_process():
    seen = []
    got = in_own_process("pseudonymise", _work, 5, progress=lambda *x: seen.append(x))
    assert got["pid"] != os.getpid()
    assert got["sum"] == 10
    assert seen == [("table", 1), ("table", 2), ("table", 3), ("table", 4), ("table", 5)]


def test_the_stage_error_arrives_as_itself_with_its_attributes():
    with pytest.raises(KeyMissingError, match="no key: set RISKSTRAT_PSEUDONYM_KEY") as caught:
        in_own_process("pseudonymise", _fail_with_key_error)
    assert caught.value.riskstrat_audited is True
    assert any("_fail_with_key_error" in note for note in caught.value.__notes__)  # the child's traceback


def test_running_out_of_memory_in_the_child_is_one_line_naming_the_stage():
    with pytest.raises(MemoryError) as caught:
        in_own_process("pseudonymise", _run_out_of_memory)
    message = str(as_resource_error(caught.value))
    assert message.startswith("pseudonymise: out of memory")
    assert "RISKSTRAT_DUCKDB_MEMORY" in message


def test_an_exception_that_cannot_cross_is_named():
    with pytest.raises(RuntimeError, match=r"^_Unpicklable: a bug\n"):
        in_own_process("pseudonymise", _fail_unpicklably)


def test_a_killed_process_is_one_line_about_memory():
    killed = r"^pseudonymise: the stage's process was killed by the system \(signal 9\)"
    with pytest.raises(ResourceError, match=killed):
        in_own_process("pseudonymise", _killed)


def test_the_childs_memory_counts_in_the_stages_peak():
    alone = clock.rss_bytes()
    during = []
    in_own_process("pseudonymise", _hold_memory, 400, progress=lambda *_: during.append(clock.rss_bytes()))
    assert during[0] - alone > 380 << 20, (alone, during)
    assert clock.rss_bytes() - alone < 100 << 20  # gone when the child is


def test_arrow_memory_is_kept_for_reuse_in_the_child_unless_the_user_chose():
    """With :data:`KEEP_ARROW_MEMORY` the pages of the first buffer are reused (fewer faults than
    one buffer's 16,384 pages); with Arrow's own setting each buffer's pages come fresh (about
    164,000 faults), as in this process when the user set it."""
    assert in_own_process("pseudonymise", _work, 0)["conf"] == KEEP_ARROW_MEMORY
    assert in_own_process("pseudonymise", _arrow_faults) < 16_384
    os.environ[JEMALLOC_CONF_ENV] = "dirty_decay_ms:1000,muzzy_decay_ms:1000"
    try:
        assert in_own_process("pseudonymise", _arrow_faults) > 5 * 16_384
    finally:
        del os.environ[JEMALLOC_CONF_ENV]


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """multiprocessing's own processes import the caller's script again; this child does not."""
    script = tmp_path / "monthly.py"
    marks = tmp_path / "marks.txt"
    script.write_text(
        textwrap.dedent(f"""
        from riskstrat.stages.isolated import in_own_process
        from tests.test_isolated import _work
        with open({str(marks)!r}, "a") as f:
            f.write("started\\n")
        print(in_own_process("pseudonymise", _work, 3)["sum"])
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "3"
    assert marks.read_text() == "started\n"


def test_keys_travel_by_pipe_not_by_environment(monkeypatch):
    key = "a-region-key-that-must-never-be-in-an-environment-0123"
    monkeypatch.delenv("RISKSTRAT_PSEUDONYM_KEY", raising=False)
    assert in_own_process("pseudonymise", _environment_and_key, key) == (False, key)


def _environment_and_key(key: str, progress=None) -> tuple[bool, str]:
    return any(key in v for v in os.environ.values()), key


def _sleep_with_pid(path: str, progress=None) -> None:
    import time
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_the_stage_ends_with_a_killed_run(tmp_path):
    """A run killed outright (``kill -9``, the out-of-memory killer) leaves no stage process
    writing into the work directory that the next run takes over."""
    import time

    marker = tmp_path / "child.pid"
    code = (
        "from riskstrat.stages.isolated import in_own_process\n"
        "from tests.test_isolated import _sleep_with_pid\n"
        f"in_own_process('pseudonymise', _sleep_with_pid, {str(marker)!r})\n"
    )
    run = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.1)
    child = int(marker.read_text())
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the stage's process outlived its run"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
