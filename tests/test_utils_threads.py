"""--threads 0 (auto): torch threads from the cores other processes leave free, re-checked; fixed counts kept."""

from __future__ import annotations

import re

import pytest
import torch

import utils.threads as threads_policy


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_policy, "cpu_cores", lambda: 4)
    yield
    torch.set_num_threads(before)
    threads_policy._auto_threads["on"] = False


def test_auto_takes_the_cores_others_leave_and_follows_them(restore_threads, monkeypatch):
    others = {"now": 1}
    monkeypatch.setattr(threads_policy, "_others_running_now", lambda: others["now"])
    line = threads_policy.configure_threads(0)
    assert torch.get_num_threads() == 3 and "keep 1 of 4 cores busy" in line
    assert threads_policy.recheck_threads() is None  # not due yet: no change, no cost
    others["now"] = 0
    threads_policy._auto_threads["checked"] -= threads_policy.AUTO_RECHECK_S
    assert threads_policy.recheck_threads() == "note: torch threads 3 -> 4 (other processes now keep 0 core(s) busy)"
    assert torch.get_num_threads() == 4
    others["now"] = 9  # more runnable tasks than cores: still one thread
    threads_policy._auto_threads["checked"] -= threads_policy.AUTO_RECHECK_S
    threads_policy.recheck_threads()
    assert torch.get_num_threads() == 1


def test_fixed_counts_and_omp_num_threads_are_kept(restore_threads, monkeypatch):
    monkeypatch.setattr(threads_policy, "_others_running_now", lambda: 3)
    threads_policy.configure_threads(2)
    assert torch.get_num_threads() == 2
    threads_policy._auto_threads["checked"] -= threads_policy.AUTO_RECHECK_S
    assert threads_policy.recheck_threads() is None and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for each rank
    threads_policy.configure_threads(0)
    assert torch.get_num_threads() == 1 and not threads_policy._auto_threads["on"]


def test_own_threads_are_not_counted_as_others():
    assert threads_policy._own_running_threads() >= 1
    assert threads_policy._others_running_now() >= 0


@pytest.mark.parametrize("threads,load", [(1, 4.0), (2, 3.9), (3, 3.0), (4, 1.0)])
def test_busy_cores_advice_never_repeats_the_given_count(restore_threads, monkeypatch, threads, load):
    monkeypatch.setattr(threads_policy.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads_policy, "_others_running_now", lambda: 2)
    chosen, line = threads_policy.thread_count(threads)
    assert chosen == threads and f"load average is {load:.1f} on 4 cores" in line
    assert f"--threads {threads})" in line  # names the count that was given
    advised = re.findall(r"pass --threads (\d+)", line)
    if threads == 1:  # one thread waits for no other: nothing smaller to advise, only the load is stated
        assert not advised and "no other --threads value would help" in line and "wait for each other" not in line
    else:
        assert len(advised) == 1 and 1 <= int(advised[0]) < threads and "wait for each other" in line


def test_busy_cores_line_names_omp_num_threads_when_it_set_the_count(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads_policy.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(threads_policy, "_others_running_now", lambda: 2)
    assert "(OMP_NUM_THREADS=2)" in threads_policy.thread_count(0)[1]
