"""bnnzoo study: tiny studies run point by point, resume, merge from folders, run in processes, report headless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import genotype_text

from bnnzoo.cli import build_parser, main
from bnnzoo.cli.study_command import _proxy
from bnnzoo.search import SearchConfig
from bnnzoo.search.grid import ProxyConfig
from bnnzoo.study import NoiseStudy, ShortcutStudy, StudyError, run_study, write_report
from bnnzoo.study.layout import RESULT_FILE, read_study

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
TINY_PROXY = ProxyConfig(epochs=2, max_steps=1, batch_size=8, train_limit=16, test_limit=8)


def tiny_noise(**overrides) -> NoiseStudy:
    search = SearchConfig(
        space="bnas",
        dataset="synthetic",
        channels=4,
        layers=3,
        epochs=2,
        warmup_epochs=0,
        batch_size=8,
        limit=32,
        image_size=16,
        sharpness_images=8,
    )
    return NoiseStudy(search, seeds=overrides.pop("seeds", 1), proxy=TINY_PROXY, **overrides)


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG


@pytest.mark.slow
def test_a_noise_study_runs_a_point_resumes_with_the_next_and_merges_a_report(tmp_path):
    study, root = tiny_noise(), tmp_path / "noise"
    assert [p.name for p in study.points()] == ["none_seed0", "eps_A_seed0", "eps_W_seed0", "both_seed0"]
    lines: list[str] = []
    assert run_study(study, root, only=[0], echo=lines.append) == ["none_seed0"]
    assert (root / "points/none_seed0" / RESULT_FILE).is_file()
    assert not (root / "points/eps_A_seed0").exists()
    report = (root / "report.md").read_text()
    assert "Points done: 1 of 4." in report and "eps_A_seed0, eps_W_seed0, both_seed0" in report

    lines.clear()
    assert run_study(study, root, only=["none_seed0", "1"], echo=lines.append) == ["eps_A_seed0"]
    assert "[none_seed0] point 0: done already, skipped" in lines
    result = json.loads((root / "points/eps_A_seed0" / RESULT_FILE).read_text())
    assert (result["arm"], result["eps_a"], result["eps_w"], result["seed"]) == ("eps_A", 0.2, 0.0, 0)
    assert len(result["history"]) == 2 and "sharpness_alpha" in result["history"][-1]
    assert 0 <= result["proxy_top1"] <= 1 and "\nbnnzoo 1\n" in result["genotype"]

    report = (root / "report.md").read_text()
    assert "Points done: 2 of 4." in report
    for heading in ("## Setup", "## Sharpness", "## Stability", "## Op preferences", "## Proxy-trained accuracy"):
        assert heading in report
    assert "## Claims" in report and "The data supports:" in report and "Cannot decide at this budget:" in report
    assert "| none (0, 0) | 1 |" in report and "| eps_W (0, 0.25) | 0 |" in report
    assert "| none_seed0 |" in report and "| eps_A_seed0 |" in report
    for image in ("sharpness.png", "stability.png", "op_preferences.png", "accuracy.png"):
        assert f"]({image})" in report and _png(root / image), image

    # a point whose search finished but whose proxy training did not: the search is not run again
    log = root / "points/eps_A_seed0/search/search_log.jsonl"
    before = log.read_text()
    (root / "points/eps_A_seed0" / RESULT_FILE).unlink()
    lines.clear()
    run_study(study, root, only=[1], echo=lines.append, report=False)
    assert log.read_text() == before and (root / "points/eps_A_seed0" / RESULT_FILE).is_file()


def test_a_folder_holds_one_study_and_the_report_needs_one(tmp_path):
    root = tmp_path / "noise"
    run_study(tiny_noise(), root, only=[], report=False)
    assert read_study(root)["kind"] == "noise"
    with pytest.raises(StudyError, match=r"other settings \(eps_w\)"):
        run_study(tiny_noise(eps_w=0.5), root, only=[])
    with pytest.raises(StudyError, match="point 9 does not exist: this study has points 0..3"):
        run_study(tiny_noise(), root, only=[9])
    with pytest.raises(StudyError, match="no point named 'nope'"):
        run_study(tiny_noise(), root, only=["nope"])
    with pytest.raises(StudyError, match="--jobs and --threads must be at least 1"):
        run_study(tiny_noise(), root, jobs=0)
    with pytest.raises(StudyError, match="--seeds must be at least 1"):
        tiny_noise(seeds=0)
    with pytest.raises(StudyError, match="no study in"):
        write_report(tmp_path / "empty")


def test_cli_study_list_report_and_errors(tmp_path, capsys):
    out = tmp_path / "noise"
    base = [
        "study",
        "noise",
        "--dataset",
        "synthetic",
        "--channels",
        "4",
        "--layers",
        "3",
        "--seeds",
        "2",
        "-o",
        str(out),
    ]
    assert main([*base, "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "0\tnone_seed0\tpending" and listing[-1] == "7\tboth_seed1\tpending" and len(listing) == 8
    assert main([*base, "--list", "--point", "3,both_seed1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["3\tboth_seed0\tpending", "7\tboth_seed1\tpending"]
    assert main(["study", "report", str(tmp_path / "nothing")]) == 1
    assert "bnnzoo study: error: no study in" in capsys.readouterr().err
    assert main([*base, "--eps-a", "0"]) == 1
    assert "--eps-a and --eps-w must be in (0, 1]" in capsys.readouterr().err
    assert main(["study", "shortcut", "--models", "bnas_a", "-o", str(tmp_path / "s"), "--list"]) == 1
    assert "needs mbconv genotypes" in capsys.readouterr().err
    args = build_parser("study").parse_args(["study", "shortcut", "--proxy-lr", "0.005", "--proxy-epochs", "3"])
    assert (_proxy(args).lr, _proxy(args).epochs, _proxy(args).batch_size) == (0.005, 3, 64)


TINY_MBCONV = """layers {
  MB3(1) 8
  MB3(2) 16 s2
}
"""


@pytest.mark.slow
def test_a_shortcut_study_runs_points_in_two_processes_and_reports_beside_table_1(tmp_path, capsys):
    model = tmp_path / "tiny.bnn"
    model.write_text(genotype_text("tiny", "mbconv", TINY_MBCONV, input="3x8x8"))
    root = tmp_path / "shortcut"
    study = ShortcutStudy((str(model),), 1.0, None, 1, "synthetic", None, "cpu", TINY_PROXY)
    assert [p.name for p in study.points()] == [
        "R1_zero_seed0",
        "R1_partial_duplicate_seed0",
        "R1_global_average_seed0",
    ]
    run_study(study, root, jobs=2, only=[0, 1], echo=lambda line: None)
    for name in ("R1_zero_seed0", "R1_partial_duplicate_seed0"):
        result = json.loads((root / "points" / name / RESULT_FILE).read_text())
        assert result["shortcut"] in name and f"shortcut {result['shortcut']}" in result["genotype"]
    assert main(["study", "report", str(root)]) == 0
    report = (root / "report.md").read_text()
    assert "Points done: 2 of 3." in report
    assert "| R1 | " in report and "| 9.86 | 71.62 | 72.12 | 71.65 |" in report
    assert "paper's claims" in report and _png(root / "shortcut.png")
    assert "PD beats Z on R1" in report


@pytest.mark.slow
def test_one_point_runs_under_torchrun_and_merges(tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "bnnzoo.cli"]
    command += ["study", "noise", "--dataset", "synthetic", "--channels", "4", "--layers", "3", "--epochs", "2"]
    command += ["--batch-size", "8", "--train-limit", "64", "--image-size", "16", "--sharpness-images", "8"]
    command += ["--seeds", "1", "--proxy-steps", "1", "--proxy-batch-size", "8", "--proxy-train-limit", "32"]
    command += ["--proxy-test-limit", "16", "-o", str(out), "--point", "3", "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[both_seed0] point 3: done") == 1  # rank 0 speaks
    result = json.loads((out / "points/both_seed0" / RESULT_FILE).read_text())
    assert (result["eps_a"], result["eps_w"]) == (0.2, 0.25) and len(result["history"]) == 2
    assert main(["study", "report", str(out)]) == 0
    assert "Points done: 1 of 4." in (out / "report.md").read_text()


def test_the_report_is_drawn_headless_without_pyplot(tmp_path):
    script = (
        "import sys\n"
        "from bnnzoo.study.plots import bars_figure, save_figure, trajectory_figure\n"
        "from pathlib import Path\n"
        f"out = Path({str(tmp_path)!r})\n"
        "save_figure(trajectory_figure([('m', {'a': [[1, 2], [2, 3]], 'b': [[0, 1]]})], 't'), out / 't.png')\n"
        "save_figure(bars_figure([('m', {'a': [1.0, 2.0], 'b': []})], 't'), out / 'b.png')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    env["MPLBACKEND"] = "TkAgg"  # an interactive backend that would need a display, were it used
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    assert _png(tmp_path / "t.png") and _png(tmp_path / "b.png")
