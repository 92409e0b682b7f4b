"""The benchmark and crash-test scripts still run and say what they promise (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(*args: str, timeout: float) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_bench_store_suite_reports_every_figure_with_its_baseline() -> None:
    result = run_script("scripts/bench.py", "--quick", "--json", "--suite", "store", timeout=120)
    store = result["store"]
    assert isinstance(store, dict)
    for key in ("raw_append_eps", "bassi_append_eps", "append_ratio", "replay_ratio"):
        assert store[key] > 0, key
    assert "machine" in result


@pytest.mark.slow
def test_crashtest_two_rounds_and_both_faults_find_nothing_lost() -> None:
    # Exit status 0 only when every invariant and both fault verdicts hold; the JSON says
    # which one failed otherwise.
    result = run_script(
        "scripts/crashtest.py", "--rounds", "2", "--json", "--lock-seconds", "2", timeout=240
    )
    assert result["rounds"] == 2
    for key in ("missing", "duplicates", "gaps", "unterminated_tool_calls", "integrity_failures"):
        assert result[key] == 0, (key, result)
    assert result["acked"] > 0
    faults = result["faults"]
    assert isinstance(faults, dict)
    assert faults["write_lock"]["tokens_stored"] == faults["write_lock"]["tokens_expected"]
    disk_full = faults["disk_full"]
    assert disk_full["health_503"] and disk_full["prompt_status"] == 503, disk_full
    assert disk_full["outage_run_end"] == "run_failed" or (
        disk_full["outage_run_tokens_stored"] == disk_full["outage_run_tokens_expected"]
    ), disk_full
    assert disk_full["daemon_alive"] and disk_full["works_after_freeing"], disk_full
    assert result["ok"] is True
