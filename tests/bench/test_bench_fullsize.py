"""bench/bench_fullsize.py at its tiny scale: every family built component by component, saved,
loaded through Engine and run once, with memory reported per component; and the public configs
counted on the meta device give contract.families' parameter counts. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from contract.families import Family, Placement, describe_family
from tests.bench.scripts import load_script


def load_bench() -> ModuleType:
    return load_script("bench_fullsize")


def run_bench(bench: ModuleType, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert bench.main(["--scale", "tiny", "--out-dir", str(out), *extra]) == 0
    (path,) = out.glob("bench_fullsize-*.json")
    return json.loads(path.read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    return run_bench(load_bench(), tmp_path_factory.mktemp("fullsize"))


def test_every_family_runs_one_job_through_the_engine(tiny_run: tuple[dict[str, Any], str]) -> None:
    report, printed = tiny_run
    assert report["machine"]["cpu_count"] and report["versions"]["torch"]  # bench.common metadata
    assert report["dtype"] == "bfloat16" and report["size"] == [512, 320] and report["steps"] == 1
    assert set(report["families"]) == {f.value for f in Family}
    calls = {"kandinsky22": {"prior": 2, "decoder": 1, "movq": 1}, "kandinsky3": {"unet": 1, "movq": 1},
             "sdxl": {"unet": 1, "refiner_unet": 1, "vae": 1},  # 2 steps: one per expert
             "kandinsky5": {"video_transformer": 16, "video_vae": 1},  # the checkpoint's own 16 steps
             "kandinsky5_image": {"transformer": 2, "vae": 1}}  # guided: with and without the prompt
    for family, block in report["families"].items():
        run = block["run"]
        assert run["image"]["size"] == [512, 320]
        assert run["job"]["seconds"] > 0 and run["load"]["seconds"] >= 0
        for name, entry in block["components"].items():
            # Built as planned, saved, and loaded back from the folder at the same size and dtype.
            assert entry["params_built"] == entry["params_built_plan"] == entry["params_full"]
            assert entry["build"]["peak_rss_gib"] > 0 and "not_built" not in entry
            loaded = run["loaded"][name]
            assert loaded["params"] == entry["params_built"] and loaded["dtype"] == "bfloat16"
            assert loaded["param_bytes"] >= 2 * loaded["params"]  # bf16 weights (+ buffers)
            stage = run["stages_first_job"][name]  # every model runs in the first job
            assert stage["calls"] >= 1 and stage["peak_rss_gib"] > 0
            assert stage["peak_rss_above_before_gib"] is not None
        assert [len(job["stages"]) for job in run["jobs"]] == [len(block["components"])] * 2
        assert run["job"] == run["jobs"][-1] and run["stages"] == run["jobs"][-1]["stages"]
        for name, n in calls[family].items():
            assert run["stages"][name]["calls"] == n, (family, name)
        # The computed side follows contract.families' rule for every placement the family has.
        description = describe_family(family)
        assert set(block["computed"]["placements"]) == {p.value for p in description.placements}
        for placement, figures in block["computed"]["placements"].items():
            assert figures["needs_gib"] == description.memory_gib(Placement(placement))
        last = list(block["components"])[-1]
        assert any(line.split()[:2] == [family, last] for line in printed.splitlines())
    assert "wrote " in printed


def test_public_configs_give_the_contract_parameter_counts() -> None:
    """Counted on the meta device (no memory): the figures contract.families and the README use."""
    bench = load_bench()
    for family in Family:
        counts = bench.full_params(family, "public")
        assert counts == {c.name: c.params for c in describe_family(family).components if c.name in counts}
    assert sum(bench.full_params(Family.KANDINSKY3, "public").values()) > 12e9


def test_a_family_too_big_for_the_host_is_reported_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench()
    monkeypatch.setattr(bench, "mem_available", lambda: 1 * 2**20)  # the one thing faked: a tiny host
    report, printed = run_bench(bench, tmp_path, "--families", "kandinsky3")
    block = report["families"]["kandinsky3"]
    assert "run" not in block and "could not be built" in block["not_run"]
    # Nothing is materialised for a job that could not start: the need is the computed one.
    for entry in block["components"].values():
        assert "run on a bigger host" in entry["not_built"] and "build" not in entry
    assert "--text-encoder-layers" in block["components"]["unet"]["not_built"]
    assert block["computed"]["total_weights_gib"] >= 0 and "kandinsky3: not run" in printed


def test_a_shallower_text_encoder_keeps_the_full_figures_computed(tmp_path: Path) -> None:
    report, printed = run_bench(load_bench(), tmp_path, "--families", "kandinsky3",
                                "--text-encoder-layers", "1")
    block = report["families"]["kandinsky3"]
    encoder = block["components"]["text_encoder"]
    assert encoder["params_built"] < encoder["params_full"]
    assert block["run"]["loaded"]["text_encoder"]["params"] == encoder["params_built"]
    assert "1 of 2 layers" in block["reduced"]["text_encoder"] and "reduced" in printed
    computed = block["computed"]["weights_gib"]["text_encoder"]
    assert computed == round(encoder["params_full"] * 2 / 2**30, 2)
