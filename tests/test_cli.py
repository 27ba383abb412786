import csv
import json
import os
from pathlib import Path

import pytest

from hypersst.cli import build_parser, main

DATA_ROOT = Path(os.environ.get("HYPERSST_DATA", "/work/shared/data/hgnn"))


def test_hgnn_grid_writes_results(tmp_path, capsys):
    out = tmp_path / "grid"
    code = main(["hgnn", "--grid", "--rank", "2", "--seeds", "2", "--epochs", "15", "--out", str(out), "--no-progress", "-q"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "gap closed" in stdout
    assert "note: synthetic nc: synthetic hierarchy" in stdout
    for method in ("full", "lora", "relora", "sst"):
        assert f"| {method} " in stdout

    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["methods"] == ["full", "lora", "relora", "sst"]
    assert payload["config"]["seed_list"] == [0, 1]
    assert len(payload["runs"]) == 8  # 4 methods x 2 seeds; full runs without a rank
    assert {run["seed"] for run in payload["runs"]} == {0, 1}
    assert len(payload["summary"]) == 4
    assert payload["gap_closed"][0]["metric"] == "f1"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert {row["method"] for row in rows} == {"full", "lora", "relora", "sst"}
    assert (out / "val_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_hgnn_default_method_is_sst(tmp_path, capsys):
    code = main(["hgnn", "--task", "lp", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path), "--no-progress", "-q"])
    assert code == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [(run["method"], run["rank"], run["task"]) for run in payload["runs"]] == [("sst", 4, "lp")]
    assert "n/a (needs full, lora or relora)" in capsys.readouterr().out


def test_hgnn_logs_config_and_seed(tmp_path, capsys):
    code = main(["hgnn", "--method", "full", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    stderr = capsys.readouterr().err
    assert "config: {" in stderr
    assert "seed=0" in stderr


@pytest.mark.parametrize("manifold,curvatures", [("lorentz", ["0.5", "2"]), ("poincare", ["-1", "0"])])
def test_curvature_sweep_writes_plot(tmp_path, manifold, curvatures):
    out = tmp_path / manifold
    argv = ["curvature", "--manifold", manifold, "--curvatures", *curvatures, "--rank", "2", "--seeds", "1", "--epochs", "5"]
    code = main([*argv, "--out", str(out), "--no-progress", "-q"])
    assert code == 0
    payload = json.loads((out / "results.json").read_text())
    assert sorted(run["curvature"] for run in payload["runs"]) == sorted(float(value) for value in curvatures)
    assert all(run["manifold"] == manifold for run in payload["runs"])
    assert (out / "curvature.png").stat().st_size > 1000
    assert (out / "val_curves.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["translate"], "invalid choice: 'translate'"),
        (["hgnn", "--dataset", "citeseer"], "invalid choice: 'citeseer'"),
        (["hgnn", "--method", "galore"], "invalid choice: 'galore'"),
        (["hgnn", "--rank", "0"], "expected a positive integer, got 0"),
        (["hgnn", "--seeds", "two"], "expected a positive integer, got 'two'"),
        (["hgnn", "--grid", "--method", "sst"], "--grid runs every method"),
        (["hgnn", "--curvature", "-1"], "must be positive"),
        (["curvature", "--manifold", "poincare", "--curvatures", "0.5"], "must all be <= 0"),
        (["curvature", "--manifold", "lorentz", "--curvatures", "0"], "must all be positive"),
    ],
)
def test_argument_errors(argv, message, capsys):
    code = main(argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_synthetic_with_hgcn_protocol_fails(tmp_path, capsys):
    code = main(["hgnn", "--protocol", "hgcn", "--out", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "only protocol 'clean'" in capsys.readouterr().err


def test_missing_data_root_fails(tmp_path, capsys):
    code = main(["hgnn", "--dataset", "cora", "--data-root", str(tmp_path / "absent"), "--out", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "hypersst hgnn: error:" in capsys.readouterr().err


def test_parser_lists_subcommands():
    help_text = build_parser().format_help()
    assert "hgnn" in help_text
    assert "curvature" in help_text


def test_identity_features_print_note(tmp_path, capsys):
    if not (DATA_ROOT / "disease_nc").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the Disease NC data folder {DATA_ROOT / 'disease_nc'} is missing; CI must provide it")
        pytest.skip(f"the Disease NC data folder {DATA_ROOT / 'disease_nc'} is missing; set HYPERSST_DATA")
    argv = ["hgnn", "--dataset", "disease", "--features", "identity", "--method", "full", "--seeds", "1", "--epochs", "3"]
    code = main([*argv, "--data-root", str(DATA_ROOT), "--out", str(tmp_path), "--no-progress", "-q"])
    assert code == 0
    assert "identity features, not comparable with published numbers" in capsys.readouterr().out
