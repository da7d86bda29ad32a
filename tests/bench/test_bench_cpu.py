"""The CPU benches at smoke size: they run the real service and write JSON with the fields the
README's tables come from. No timing is asserted; speed targets live in the scripts' output."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.bench.scripts import load_script

METADATA_FIELDS = ("date", "git_commit", "machine", "versions", "load_average_start", "load_average_end")


def load(name: str) -> ModuleType:
    return load_script(name)


def only_result(out_dir: Path, stem: str) -> dict[str, Any]:
    (path,) = out_dir.glob(f"{stem}-*.json")
    report = json.loads(path.read_text())
    for field in METADATA_FIELDS:
        assert field in report, field
    assert report["machine"]["cpus_usable"] >= 1 and len(report["load_average_start"]) == 3
    assert report["versions"]["aiogram"] and report["versions"]["python"]
    return report


# --------------------------------------------------------------------------- bench/common.py


def test_percentiles_interpolate_between_ranks() -> None:
    common = load("common")
    assert common.percentile([10.0], 99) == 10.0
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert common.percentile(list(map(float, range(101))), 95) == pytest.approx(95.0)
    stats = common.summary([3.0, 1.0, 2.0])
    assert stats["n"] == 3 and stats["min"] == 1.0 and stats["max"] == 3.0 and stats["p50"] == 2.0


def test_percentiles_refuse_bad_input() -> None:
    common = load("common")
    with pytest.raises(ValueError, match="no values"):
        common.percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        common.percentile([1.0], 101)
    with pytest.raises(ValueError, match="no values"):
        common.summary([])


def test_table_aligns_columns() -> None:
    table = load("common").format_table(["name", "ms"], [["a", 1.25], ["longer", 1234.0]])
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert lines[2].endswith("1.2") and lines[3].endswith("1234")


def test_results_carry_machine_versions_date_and_load(tmp_path: Path) -> None:
    path = load("common").write_results({"bench": "x", "value": 1}, tmp_path / "out", "x")
    assert path.parent == tmp_path / "out" and path.name.startswith("x-") and path.suffix == ".json"
    report = only_result(tmp_path / "out", "x")
    assert report["value"] == 1 and not list((tmp_path / "out").glob("*.tmp"))


# --------------------------------------------------------------------------- bench_system.py


def test_waiting_behind_other_jobs_is_not_counted_as_overhead() -> None:
    bench = load("bench_system")

    def job(created: float, started: float, finished: float, worker: str = "w1") -> Any:
        return bench.JobTiming(chat_id=1, job_id="j", worker=worker, sent=created - 0.01, created=created,
                               started=started, finished=finished, delivered=finished + 0.02, engine_s=0.5,
                               encode_s=0.0)

    first, second, third = job(0.0, 0.01, 1.0), job(0.1, 1.03, 2.0), job(0.2, 2.05, 3.0)
    jobs = [first, second, third]
    # One worker: the second job waited 0.9 s (0.1 → 1.0) while the first ran; 0.03 s was its pickup.
    assert bench.blocked_time(second, jobs) == pytest.approx(0.9)
    second.blocked_s = 0.9
    assert second.stages_ms()["pickup"] == pytest.approx(30.0)
    assert second.own_overhead_s == pytest.approx(second.e2e_s - 0.5 - 0.9)
    assert sum(second.stages_ms().values()) == pytest.approx(second.own_overhead_s * 1e3)
    # The third waits for the second only: the first job's gap is not charged to it again.
    assert bench.blocked_time(third, jobs) == pytest.approx(2.0 - 0.2)
    assert bench.blocked_time(first, jobs) == 0.0
    # A job on another worker was never behind these.
    assert bench.blocked_time(job(0.5, 0.6, 1.5, worker="w2"), jobs) == 0.0


def test_system_smoke_run_writes_latency_and_scaling(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_system")
    assert bench.main(["--inflight", "1", "2", "--jobs", "2", "--workers", "1", "--scaling-jobs", "2",
                       "--warmup", "1", "--gpu-standin", "0.1", "--out-dir", str(tmp_path),
                       "--logs-dir", str(tmp_path / "logs")]) == 0
    report = only_result(tmp_path, "bench_system")
    assert Path(report["setup"]["logs"]).parent == tmp_path / "logs"  # the processes' logs, kept there
    assert report["setup"]["gpu_standin_s_per_step"] == 0.1
    assert [lv["inflight"] for lv in report["latency"]] == [1, 2]
    for level in report["latency"]:
        assert level["jobs"] == 2 and len(level["timings"]) == 2
        for key in ("own_overhead_ms", "e2e_ms", "engine_ms", "blocked_behind_other_jobs_ms"):
            assert {"p50", "p95", "p99", "n"} <= set(level[key])
        assert set(level["stages_ms"]) == {"ingress", "pickup", "worker", "egress"}
        for t in level["timings"]:
            # Causal order across processes: sent → queued → started → finished → delivered.
            assert t["sent"] < t["created"] <= t["started"] < t["finished"] < t["delivered"]
            # The stand-in's sleep (3 steps × 0.1 s) is engine time, not the service's overhead.
            assert 0.3 <= t["engine_s"] < t["finished"] - t["started"]
        assert level["e2e_ms"]["p50"] > level["engine_ms"]["p50"] > 0
    # Steady state = the jobs after each level's opening burst of `in flight` messages.
    one, two = report["latency"]
    assert one["steady_own_overhead_ms"]["n"] == 1 and set(one["steady_stages_ms"]) == set(one["stages_ms"])
    assert two["steady_own_overhead_ms"] is None  # 2 jobs at 2 in flight: all burst, none steady
    (scaling,) = report["scaling"]
    assert scaling["workers"] == 1 and scaling["jobs"] == 2 and scaling["jobs_per_s"] > 0
    assert scaling["speedup_vs_first"] == 1.0
    assert report["botapi_violations"] == [] and report["botapi_server_errors"] == []
    # Each measured job's own chat: its status message and its one result, at least, per result.
    calls = report["bot_api_calls_per_result"]
    assert calls["sendMessage"] >= 1 and calls["sendPhoto"] == 1
    assert calls["total"] == pytest.approx(sum(n for m, n in calls.items() if m != "total"))
    printed = capsys.readouterr().out
    assert "own overhead" in printed and "Bot API calls per delivered result" in printed


def test_queue_smoke_run_with_a_gpu_standin_counts_the_sleep_as_engine_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_queue")
    out = tmp_path / "queue.json"
    assert bench.main(["--jobs", "2", "--workers", "1", "--warmup", "1", "--gpu-standin", "0.3",
                       "--out", str(out), "--logs-dir", str(tmp_path / "logs")]) == 0
    assert list((tmp_path / "logs").glob("bench-queue-*/*.log"))  # the worker's log, kept there
    report = json.loads(out.read_text())
    assert report["setup"]["gpu_standin_sleep_per_step_s"] == 0.3
    (row,) = report["rows"]
    assert row["workers"] == 1 and row["jobs"] == 2 and row["jobs_per_s"] > 0
    # Two steps sleeping 0.3 s each are inside the engine's time, so not charged to the queue.
    assert row["engine_mean_s"] >= 0.6
    assert row["overhead_p50_ms"] < row["engine_mean_s"] * 1000
    assert "GPU stand-in" in capsys.readouterr().out


def test_progress_smoke_run_times_the_step_hooks_against_a_reference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_progress")
    assert bench.main(["--steps", "500", "--paced-steps", "20", "--step-ms", "1", "--out-dir",
                       str(tmp_path)]) == 0
    report = only_result(tmp_path, "bench_progress")
    runs = report["runs"]
    assert len(runs) == 6 and {r["loop"] for r in runs.values()} == {"hot", "paced"}
    for name, r in runs.items():
        assert r["us_per_step"] > 0
        if "reference" in name:
            assert r["added_us_per_step"] == 0.0 and r["events_published"] == 0
    # Paced like GPU steps, an unthrottled publisher really publishes, so the cost is measured live.
    assert runs["paced: publisher, throttle 0.0 s"]["events_published"] >= 2
    assert runs["paced: reference, no-op hooks"]["us_per_step"] >= 1000
    assert "step hooks" in capsys.readouterr().out


# --------------------------------------------------------------------------- bench_frontend.py


def test_frontend_smoke_run_writes_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_frontend")
    cores = os.sched_getaffinity(0)
    assert bench.main(["--updates", "20", "--warmup", "5", "--rounds", "2", "--polling",
                       "--out-dir", str(tmp_path)]) == 0
    assert os.sched_getaffinity(0) == cores  # the bench pins itself to one core, then lets go
    report = only_result(tmp_path, "bench_frontend")
    for name in ("reference", "floor", "service"):
        run = report[name]
        assert run["updates"] == 20 and run["updates_per_s"] > 0 and run["updates_per_cpu_s"] > 0
        assert run["errors"] == 0 and {"p50", "p99"} <= set(run["latency_ms"])
        assert len(run["rounds_per_cpu_s"]) == 2 and run["updates_per_cpu_s"] == max(run["rounds_per_cpu_s"])
    service = report["service"]
    assert service["jobs_queued"] == 2 * 20 and service["not_queued"] == 0  # both rounds'
    assert len(report["round_ratios_cpu"]) == 2
    # Every measured update read and wrote Redis (FSM, quotas, the job record, the RQ queue).
    assert service["redis_commands_per_update_total"] > 5 and "rpush" in service["redis_commands_per_update"]
    assert report["polling"]["handled"] == 20 and report["polling"]["updates_per_s"] > 0
    assert report["service_vs_reference"] > 0 and isinstance(report["goal_met"], bool)
    assert report["service_vs_reference_cpu"] > 0
    # The floor made its own round trips only: the service's count is the service's alone.
    assert report["floor_vs_reference_cpu"] > 0 and report["service_vs_floor_cpu"] > 0
    assert not any(name == "incr" for name in service["redis_commands_per_update"])
    assert report["bound_by"] in ("the bot's CPU", "the bot-wide pace of 30 messages/s (BOT_GLOBAL_RATE)")
    assert report["botapi"]["violations"] == [] and report["botapi"]["server_errors"] == []
    assert report["botapi"]["send_message_ok"] >= 2 * (5 + 2 * 20) + 20  # every update was answered
    assert "updates handled" in capsys.readouterr().out


def test_frontend_plain_prompts_become_jobs_through_the_catch_all(tmp_path: Path) -> None:
    bench = load("bench_frontend")
    assert bench.main(["--plain", "--updates", "10", "--warmup", "2", "--rounds", "1",
                       "--out-dir", str(tmp_path)]) == 0
    report = only_result(tmp_path, "bench_frontend")
    assert report["setup"]["update"].startswith("a plain-text prompt")
    assert report["service"]["jobs_queued"] == 10 and report["service"]["not_queued"] == 0


def test_frontend_says_which_limit_bound_the_run() -> None:
    """Each update answers its own chat once: near the bot-wide pace, the pace held the run back."""
    bound_by = load("bench_frontend").bound_by
    paced = SimpleNamespace(global_rate=30.0)
    assert bound_by({"updates_per_s": 29.0}, paced) == "the bot-wide pace of 30 messages/s (BOT_GLOBAL_RATE)"
    assert bound_by({"updates_per_s": 12.0}, paced) == "the bot's CPU"
    assert bound_by({"updates_per_s": 400.0}, SimpleNamespace(global_rate=1000.0)) == "the bot's CPU"


def test_frontend_refuses_an_empty_burst(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        load("bench_frontend").main(["--updates", "0", "--out-dir", str(tmp_path)])
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bench_memory.py


def test_memory_smoke_run_writes_resident_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_memory")
    assert bench.main(["--burst", "5", "--out-dir", str(tmp_path), "--logs-dir", str(tmp_path / "logs")]) == 0
    report = only_result(tmp_path, "bench_memory")
    assert Path(report["logs"]).parent == tmp_path / "logs"
    samples = report["samples_kib"]
    for name in ("bot_idle", "bot_after_burst", "worker_idle", "worker_after_one_job", "ref_python",
                 "ref_import_aiogram_redis", "ref_import_torch_diffusers"):
        sample = samples[name]
        assert 0 < sample["private"] <= sample["vmrss"] <= sample["vmhwm"], name
        assert sample["pss"] > 0
    # The bot and the worker each hold more than a bare interpreter; the worker holds torch.
    assert samples["bot_idle"]["vmrss"] > samples["ref_python"]["vmrss"]
    assert samples["worker_idle"]["vmrss"] > samples["bot_idle"]["vmrss"]
    assert report["ratios"]["worker_idle_rss_over_torch_import"] > 0
    assert "resident memory" in capsys.readouterr().out


def test_memory_refuses_an_empty_burst(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        load("bench_memory").main(["--burst", "0", "--out-dir", str(tmp_path)])


# --------------------------------------------------------------------------- bench_preview.py


def test_bench_preview_smoke(tmp_path: Path) -> None:
    """Live previews at the smallest size: every figure the README's table shows is written."""
    bench = load("bench_preview")
    assert bench.main(["--sizes", "512x256", "--steps", "6", "--repeats", "1", "--threads", "1",
                       "--out-dir", str(tmp_path)]) == 0
    report = only_result(tmp_path, "bench_preview")
    [row] = report["rows"]
    assert row["size"] == "512x256" and row["preview_every"] == 5 and row["goal"] == 0.03
    for field in ("decoder_step_ms", "render_ms", "encode_ms", "tiny_movq_decode_ms", "job_off_s",
                  "job_on_s"):
        assert row[field] > 0, field
    assert row["render_per_interval"] == pytest.approx(row["render_ms"] / (5 * row["decoder_step_ms"]))
