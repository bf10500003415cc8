"""The soak bench's memory arithmetic and process finding (scripts/bench_soak.py, scripts/bench.py)."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # not a package: run as scripts

import bench
from bench_soak import memory_of


def test_the_warm_up_is_the_sample_at_one_minute_and_flat_means_within_ten_percent_of_it():
    samples = [
        (0.0, {"web": 100.0, "arq": 80.0}),
        (30.0, {"web": 150.0, "arq": 90.0}),
        (60.1, {"web": 200.0, "arq": 100.0}),
        (90.0, {"web": 230.0, "arq": 104.0}),
        (120.0, {"web": 220.0, "arq": 111.0}),
    ]
    web, arq = memory_of({"web": 11, "arq": 12}, samples)
    assert (web.start_mib, web.warmup_mib, web.end_mib, web.max_mib) == (100.0, 200.0, 220.0, 230.0)
    assert round(web.growth_mib, 3) == 20.0 and round(web.growth_share, 3) == 0.1
    assert web.flat  # exactly 10 %: still flat
    assert (arq.warmup_mib, arq.end_mib) == (100.0, 111.0)
    assert not arq.flat  # 11 %


def test_a_soak_shorter_than_the_warm_up_measures_from_its_first_sample():
    (only,) = memory_of({"web": 11}, [(0.0, {"web": 50.0}), (30.0, {"web": 52.0})])
    assert (only.warmup_mib, only.end_mib) == (50.0, 52.0)


def test_the_children_of_a_process_are_found_and_their_rss_read():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in bench.child_pids(os.getpid())
        assert bench.child_pids(child.pid) == []
        assert 1 < bench.rss_mib(child.pid) < 500
    finally:
        child.kill()
        child.wait()
    assert bench.rss_mib(child.pid) == 0.0  # gone
