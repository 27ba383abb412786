import csv
import json
import math
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


def test_vector_lr_options_reach_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--sst-vector-lr-scale", "0.25", "--out", str(tmp_path), "-q"]
    assert main(argv + ["--sst-vector-lr-rule", "width", "--no-progress"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["sst_vector_lr_scale"] == 0.25
    assert payload["config"]["sst_vector_lr_rule"] == "width"
    assert [(run["sst"]["vector_lr_scale"], run["sst"]["vector_lr_rule"]) for run in payload["runs"]] == [(0.25, "width")]


def test_value_lr_option_reaches_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--method", "sst", "relora", "--rank", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-value-lr-scale", "0.1", "--no-progress", "-q"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["sst_value_lr_scale"] == 0.1
    assert [(run["method"], run["sst"].get("value_lr_scale")) for run in payload["runs"]] == [("sst", 0.1), ("relora", None)]


def test_warmup_scope_option_reaches_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--method", "sst", "relora", "--rank", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-warmup-scope", "reset", "--no-progress", "-q"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["sst_warmup_scope"] == "reset"
    assert [run["sst"]["warmup_scope"] for run in payload["runs"]] == ["reset", "reset"]


def test_state_reset_option_reaches_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--method", "sst", "relora", "--rank", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-state-reset", "restart", "--no-progress", "-q"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["sst_state_reset"] == "restart"
    assert [(run["method"], run["sst"]["state_reset"]) for run in payload["runs"]] == [("sst", "restart"), ("relora", "restart")]


def test_iterations_per_round_option_reaches_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--method", "sst", "--rank", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-iterations-per-round", "3", "--no-progress", "-q"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["sst_iterations_per_round"] == 3
    assert [run["sst"]["iterations_per_round"] for run in payload["runs"]] == [3]


def test_gradient_sampling_options_reach_runs(tmp_path):
    argv = ["hgnn", "--seeds", "1", "--epochs", "3", "--method", "sst", "relora", "--rank", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-gradient", "default", "--sst-sampling", "proportional", "--no-progress", "-q"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert (payload["config"]["sst_gradient"], payload["config"]["sst_sampling"]) == ("default", "proportional")
    recorded = [(run["method"], run["sst"]["gradient"], run["sst"]["sampling"]) for run in payload["runs"]]
    assert recorded == [("sst", "default", "proportional"), ("relora", "enhanced", "mixed")]


def test_help_shows_library_defaults(capsys):
    from hypersst.tasks import hgnn

    assert main(["hgnn", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"iteration (default: {hgnn.SST_STEPS_PER_ITERATION})" in text
    assert f"per iteration (default: {hgnn.SST_WARMUP_STEPS} for SST, {hgnn.RELORA_WARMUP_STEPS} for ReLoRA*)" in text
    assert f"singular vectors relative to the per-dataset one (default: {hgnn.SST_VECTOR_LR_SCALE:g})" in text
    assert f"singular values relative to the per-dataset one (default: {hgnn.SST_VALUE_LR_SCALE:g})" in text
    assert f"sqrt(hidden width / n) (default: {hgnn.SST_VECTOR_LR_RULE})" in text
    assert f"Adam restarts exactly (default: {hgnn.SST_STATE_RESET})" in text
    assert "re-SVDs of a layer (default: ceil(k / r), k = min(in, out) of the layer)" in text
    assert "--sst-state-reset {" + ",".join(hgnn.STATE_RESETS) + "}" in text
    assert "--sst-gradient {" + ",".join(hgnn.GRADIENTS) + "}" in text
    assert "--sst-sampling {" + ",".join(hgnn.SAMPLINGS) + "}" in text
    assert f"s_i times those); ReLoRA* ignores it (default: {hgnn.SST_GRADIENT})" in text
    assert f"the r largest. ReLoRA* ignores it (default: {hgnn.SST_SAMPLING})" in text


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
        (["hgnn", "--first-seed", "-1"], "--first-seed: expected a non-negative integer, got -1"),
        (["hgnn", "--first-seed", str(2**63 - 1), "--seeds", "2"], "reaches seed 9223372036854775808, above the largest"),
        (["hgnn", "--grid", "--method", "sst"], "--grid runs every method"),
        (["hgnn", "--curvature", "-1"], "must be positive"),
        (["hgnn", "--sst-vector-lr-scale", "0"], "--sst-vector-lr-scale: expected a positive finite number, got 0"),
        (["hgnn", "--sst-vector-lr-scale", "fast"], "expected a positive number, got 'fast'"),
        (["hgnn", "--sst-value-lr-scale", "-0.1"], "--sst-value-lr-scale: expected a positive finite number, got -0.1"),
        (["hgnn", "--sst-iterations-per-round", "0"], "--sst-iterations-per-round: expected a positive integer, got 0"),
        (["hgnn", "--sst-gradient", "natural"], "invalid choice: 'natural'"),
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
    assert code == 2
    assert "--dataset synthetic has only --protocol clean" in capsys.readouterr().err


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error" in line.lower()]


def test_missing_data_root_fails(tmp_path, capsys):
    absent = tmp_path / "absent"
    code = main(["hgnn", "--dataset", "cora", "--data-root", str(absent), "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"hypersst hgnn: error: --data-root {absent} is not a folder")


def test_unset_data_root_names_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HYPERSST_DATA", raising=False)
    code = main(["hgnn", "--dataset", "cora", "--out", str(tmp_path), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pass --data-root PATH or set HYPERSST_DATA" in err
    assert "root=" not in err


def test_environment_data_root_must_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HYPERSST_DATA", str(tmp_path / "nowhere"))
    code = main(["curvature", "--dataset", "synthetic", "pubmed", "--out", str(tmp_path), "-q"])
    assert code == 2
    assert f"HYPERSST_DATA {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("blocker", ["file", "under_file", "runs_file"])
def test_unwritable_out_fails_before_training(tmp_path, capsys, blocker):
    regular = tmp_path / "results.txt"
    regular.write_text("not a folder")
    if blocker == "runs_file":
        out = tmp_path / "out"
        out.mkdir()
        (out / "runs").write_text("not a folder")
    else:
        out = regular if blocker == "file" else regular / "sub"
    code = main(["hgnn", "--seeds", "1", "--epochs", "2", "--out", str(out), "--no-progress"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # Neither the data note nor the table is printed, so nothing ran.
    assert "run synthetic" not in captured.err
    lines = error_lines(captured.err)
    assert len(lines) == 1
    expected = {
        "file": f"--out {out} is a file, not a folder",
        "under_file": f"--out {out}: {out} is not a writable folder",
        "runs_file": f"--out {out}: {out / 'runs'} is not a writable folder (File exists)",
    }[blocker]
    assert lines[0].startswith(f"hypersst hgnn: error: {expected}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sst-warmup", "200"], "--sst-warmup 200 exceeds --sst-steps 20 (the default)"),
        (["--sst-steps", "5"], "--sst-warmup 10 (the SST default) exceeds --sst-steps 5"),
        (["--method", "relora", "--sst-steps", "1"], "--sst-warmup 2 (the ReLoRA* default) exceeds --sst-steps 1"),
        (["--sst-steps", "5", "--sst-warmup", "6"], "choose --sst-warmup <= 5"),
    ],
)
def test_long_warmup_fails_at_parsing(tmp_path, argv, message, capsys):
    code = main(["hgnn", *argv, "--out", str(tmp_path / "out"), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "warmup_steps" not in err
    assert not (tmp_path / "out").exists()  # The check runs before the output folder is made.


def test_oversized_rank_names_flag(tmp_path, capsys):
    code = main(["hgnn", "--grid", "--rank", "2", "100", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path), "-q"])
    assert code == 2
    captured = capsys.readouterr()
    message = "--rank 100 is too large for synthetic nc: its narrowest hyperbolic linear layer maps 9 to 16 features"
    assert message in captured.err
    assert "--rank must be at most 9" in captured.err
    assert "make_linear" not in captured.err
    assert "|" not in captured.out  # No table is printed, so no run trained.
    assert not (tmp_path / "results.json").exists()


def test_largest_rank_runs(tmp_path):
    argv = ["curvature", "--manifold", "poincare", "--curvatures", "-1", "--rank", "8", "--seeds", "1", "--epochs", "2"]
    assert main([*argv, "--out", str(tmp_path), "-q"]) == 0


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_errors_and_notes_print_once(tmp_path, capsys, quiet):
    code = main(["hgnn", "--rank", "100", "--seeds", "1", "--out", str(tmp_path), "--no-progress", *quiet])
    assert code == 2
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert both.count("--rank 100 is too large") == 1
    assert "ERROR" not in both
    assert both.count("synthetic hierarchy for smoke tests") == 1


def test_nan_loss_advice_uses_flags(tmp_path, monkeypatch, capsys):
    import hypersst.models

    def nan_loss(scores, labels, margin):
        return scores.sum() * math.nan

    monkeypatch.setattr(hypersst.models, "nc_margin_loss", nan_loss)
    code = main(["hgnn", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path), "-q"])
    assert code == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "the training loss became nan" in line
    assert "try --dtype float64" in line
    assert "torch.float64" not in line


def test_missing_features_advice_uses_flags(tmp_path, monkeypatch, capsys):
    from hypersst.data.graphs import _missing_features_error
    from hypersst.tasks import hgnn

    def missing_features(*args, **kwargs):
        raise _missing_features_error("cora", tmp_path / "cora.feats.npz")

    monkeypatch.setattr(hgnn, "load_graph", missing_features)
    code = main(["hgnn", "--seeds", "1", "--out", str(tmp_path), "-q"])
    assert code == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "or run with --features identity;" in line
    assert "features='identity'" not in line


def test_progress_hidden_without_terminal(tmp_path, capsys):
    code = main(["hgnn", "--method", "sst", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path), "-q"])
    assert code == 0
    err = capsys.readouterr().err
    assert "it/s" not in err
    assert "%|" not in err


def test_best_epoch_zero_is_flagged(tmp_path, capsys):
    code = main(["hgnn", "--method", "full", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "seed 0: best epoch 0: the run never improved; consider more --epochs" in out
    with (tmp_path / "results.csv").open() as handle:
        assert [row["best_epoch"] for row in csv.DictReader(handle)] == ["0"]


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


def test_hgnn_patience_reaches_the_runs(tmp_path):
    argv = ["hgnn", "--method", "full", "--seeds", "1", "--epochs", "40", "--patience", "3", "--out", str(tmp_path), "-q"]
    assert main(argv) == 0
    (run,) = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert run["hyperparameters"]["patience"] == 3


def test_hgnn_rejects_zero_patience(capsys):
    code = main(["hgnn", "--patience", "0"])
    assert code == 2
    assert "--patience: expected a positive integer, got 0" in capsys.readouterr().err


def test_first_seed_shifts_the_seeds(tmp_path):
    argv = ["hgnn", "--method", "full", "--seeds", "2", "--first-seed", "3", "--epochs", "3", "--out", str(tmp_path), "-q"]
    assert main(argv + ["--no-progress"]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["seed_list"] == [3, 4]
    assert [run["seed"] for run in payload["runs"]] == [3, 4]
    alone = tmp_path / "seed4"
    argv = ["hgnn", "--method", "full", "--seeds", "1", "--first-seed", "4", "--epochs", "3", "--out", str(alone), "-q"]
    assert main(argv + ["--no-progress"]) == 0
    (run,) = json.loads((alone / "results.json").read_text())["runs"]
    assert run["history"] == payload["runs"][1]["history"]


def _grid(out, *extra):
    return ["hgnn", "--grid", "--rank", "2", "--seeds", "2", "--epochs", "5", "--out", str(out), "--no-progress", "-q", *extra]


def _without_seconds(runs):
    return [{key: value for key, value in run.items() if key != "seconds"} for run in runs]


def test_resume_after_interrupt_matches_an_uninterrupted_grid(tmp_path, monkeypatch, capsys):
    from hypersst.tasks import hgnn

    assert main(_grid(tmp_path / "whole")) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())

    real_run = hgnn.run_hgnn
    calls = []
    interrupt = {"at_call": 3}

    def interrupted_run(*args, **kwargs):
        calls.append(args[:5])
        if len(calls) == interrupt["at_call"]:
            interrupt["at_call"] = None
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    monkeypatch.setattr(hgnn, "run_hgnn", interrupted_run)
    out = tmp_path / "parts"
    assert main(_grid(out)) == 130
    assert "interrupted with 2 of 8 runs finished and saved" in capsys.readouterr().err
    assert len(list((out / "runs").glob("*.json"))) == 2
    assert not (out / "results.json").exists()

    calls.clear()
    assert main(_grid(out, "--resume")) == 0
    assert "resumed 2 of 8 runs" in capsys.readouterr().out
    assert len(calls) == 6
    assert ("synthetic", "nc", "full", None, 0) not in calls
    resumed = json.loads((out / "results.json").read_text())
    assert _without_seconds(resumed["runs"]) == _without_seconds(whole["runs"])
    assert resumed["summary"] == whole["summary"]
    assert resumed["gap_closed"] == whole["gap_closed"]

    calls.clear()
    assert main(_grid(out, "--resume")) == 0
    assert calls == [], "a finished grid must not train again"


def test_resume_adds_seeds(tmp_path, capsys):
    assert main(_grid(tmp_path)) == 0
    argv = _grid(tmp_path, "--resume")
    argv[argv.index("--seeds") + 1] = "3"
    assert main(argv) == 0
    assert "resumed 8 of 12 runs" in capsys.readouterr().out
    payload = json.loads((tmp_path / "results.json").read_text())
    assert sorted({run["seed"] for run in payload["runs"]}) == [0, 1, 2]


def test_resume_rejects_other_settings(tmp_path, capsys):
    assert main(_grid(tmp_path)) == 0
    assert main(_grid(tmp_path, "--resume", "--sst-steps", "10")) == 2
    error = capsys.readouterr().err
    assert "4 saved run(s)" in error
    assert "were trained with different settings, e.g. synthetic-nc-lorentz-k1.0-relora-r2-seed0.json" in error
    assert "(--sst-steps 20 there, 10 now)" in error
    assert "drop --resume" in error


def test_resume_names_an_unreadable_run_file(tmp_path, capsys):
    assert main(_grid(tmp_path)) == 0
    broken = tmp_path / "runs" / "synthetic-nc-lorentz-k1.0-sst-r2-seed1.json"
    broken.write_text('{"format": 1, "run_')
    assert main(_grid(tmp_path, "--resume")) == 2
    error = capsys.readouterr().err
    assert f"{broken} is not a run file of hypersst" in error
    assert "delete it to train that run again" in error


def test_rerun_without_resume_says_it_retrains(tmp_path, capsys):
    argv = ["hgnn", "--method", "full", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path), "--no-progress", "-q"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    assert "contains 1 of these runs from an earlier command; they are trained again" in capsys.readouterr().out


def test_curvature_runs_get_one_file_each(tmp_path):
    argv = ["curvature", "--manifold", "poincare", "--curvatures", "-1", "-0.5", "0", "--seeds", "1", "--epochs", "3"]
    assert main(argv + ["--rank", "2", "--out", str(tmp_path), "--no-progress", "-q"]) == 0
    names = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert names == [f"synthetic-nc-poincare-k{value}-sst-r2-seed0.json" for value in ("-0.5", "-1.0", "0.0")]


def test_resume_keeps_runs_a_setting_does_not_reach(tmp_path, monkeypatch, capsys):
    from hypersst.tasks import hgnn

    assert main(_grid(tmp_path)) == 0
    for path in (tmp_path / "runs").glob("*-sst-*"):
        path.unlink()
    real_run = hgnn.run_hgnn
    calls = []

    def counted_run(*args, **kwargs):
        calls.append(args[2])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(hgnn, "run_hgnn", counted_run)
    assert main(_grid(tmp_path, "--resume", "--sst-sampling", "proportional")) == 0
    assert calls == ["sst", "sst"]
    assert "resumed 6 of 8 runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hgnn", "--rank", "2", "2"], "--rank lists 2 more than once"),
        (["hgnn", "--method", "sst", "full", "sst"], "--method lists sst more than once"),
        (["hgnn", "--dataset", "synthetic", "synthetic"], "--dataset lists synthetic more than once"),
        (["curvature", "--manifold", "poincare", "--curvatures", "-1", "-1.0"], "--curvatures lists -1.0 more than once"),
        (["curvature", "--manifold", "poincare", "--curvatures", "0", "-0"], "--curvatures lists 0.0 more than once"),
    ],
)
def test_repeated_values_are_rejected(tmp_path, capsys, argv, message):
    assert main(argv + ["--seeds", "1", "--epochs", "2", "--out", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_negative_zero_curvature_reuses_the_euclidean_run(tmp_path, capsys):
    argv = ["curvature", "--manifold", "poincare", "--rank", "2", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path)]
    assert main(argv + ["--curvatures", "0", "--no-progress", "-q"]) == 0
    assert main(argv + ["--curvatures", "-0", "--resume", "--no-progress", "-q"]) == 0
    assert "resumed 1 of 1 runs" in capsys.readouterr().out


def _saved_file(out):
    return out / "runs" / "synthetic-nc-lorentz-k1.0-full-seed0.json"


def _full_run(out, *extra):
    return ["hgnn", "--method", "full", "--seeds", "1", "--epochs", "3", "--out", str(out), "--no-progress", "-q", *extra]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"seed": 5}, "contains the record of another run than its name gives"),
        ({"method": "sst"}, "contains the record of another run than its name gives"),
        ({"test": None}, "does not contain a complete run record"),
        ({"test": {}}, "does not contain a complete run record"),
        ({"test": {"f1": "x", "accuracy": 0.5}}, "does not contain a complete run record"),
        ({"history": {}}, "does not contain a complete run record"),
        ({"best_epoch": "a"}, "does not contain a complete run record"),
    ],
)
def test_resume_rejects_an_incomplete_record(tmp_path, capsys, damage, message):
    assert main(_full_run(tmp_path)) == 0
    payload = json.loads(_saved_file(tmp_path).read_text())
    payload["record"].update(damage)
    _saved_file(tmp_path).write_text(json.dumps(payload))
    assert main(_full_run(tmp_path, "--resume")) == 2
    error = capsys.readouterr().err
    assert f"{_saved_file(tmp_path)} {message}" in error
    assert "delete it to train that run again" in error


def test_resume_reports_folder_run_file(tmp_path, capsys):
    _saved_file(tmp_path).mkdir(parents=True)
    assert main(_full_run(tmp_path, "--resume")) == 2
    error = capsys.readouterr().err
    assert f"cannot read {_saved_file(tmp_path)} (Is a directory); delete it to train that run again" in error


def test_folder_as_run_file_rejected(tmp_path, capsys):
    _saved_file(tmp_path).mkdir(parents=True)
    assert main(_full_run(tmp_path)) == 2
    captured = capsys.readouterr()
    assert "run file path(s) are taken by something that is not a file" in captured.err
    assert "delete them or choose another --out" in captured.err
    assert "|" not in captured.out  # no table, so nothing trained


def test_folder_as_result_file_rejected(tmp_path, capsys):
    (tmp_path / "results.csv").mkdir()
    assert main(_full_run(tmp_path)) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'results.csv'} is a folder, so the result file cannot be written" in error
    assert not _saved_file(tmp_path).exists()


def test_sequential_rejects_short_round(tmp_path, capsys):
    argv = ["hgnn", "--method", "full", "sst", "--rank", "2", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path)]
    assert main(argv + ["--sst-sampling", "sequential", "--sst-iterations-per-round", "1", "--no-progress", "-q"]) == 2
    error = capsys.readouterr().err
    assert "--sst-iterations-per-round 1 is too short for --sst-sampling sequential at --rank 2" in error
    assert "so a round needs ceil(16 / 2) = 8 iterations" in error
    assert not list(tmp_path.glob("runs/*.json")), "the check must come before the full-rank run trains"


def test_mismatch_message_names_both_values(tmp_path, capsys):
    assert main(_full_run(tmp_path)) == 0
    assert main(_full_run(tmp_path, "--resume", "--patience", "50")) == 2
    # The synthetic data's default patience is 100.
    assert "(--patience 100 there, 50 now)" in capsys.readouterr().err


def test_mismatch_message_names_a_default_rule(tmp_path, capsys):
    argv = ["hgnn", "--method", "sst", "--rank", "2", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path), "--no-progress", "-q"]
    assert main(argv) == 0
    assert main(argv + ["--resume", "--sst-iterations-per-round", "2"]) == 2
    assert "(--sst-iterations-per-round default there, 2 now)" in capsys.readouterr().err


def test_resume_accepts_the_default_patience_typed_out(tmp_path, capsys):
    assert main(_full_run(tmp_path)) == 0
    assert main(_full_run(tmp_path, "--resume", "--patience", "100")) == 0
    assert "resumed 1 of 1 runs" in capsys.readouterr().out


def test_resume_reads_stopping_defaults_saved_as_null(tmp_path, capsys):
    assert main(_full_run(tmp_path, "--patience", "100")) == 0
    payload = json.loads(_saved_file(tmp_path).read_text())
    assert payload["run_config"]["patience"] == 100
    payload["run_config"]["patience"] = None
    _saved_file(tmp_path).write_text(json.dumps(payload))
    assert main(_full_run(tmp_path, "--resume")) == 0
    assert "resumed 1 of 1 runs" in capsys.readouterr().out


def test_resume_names_a_newer_run_file_format(tmp_path, capsys):
    assert main(_full_run(tmp_path)) == 0
    payload = json.loads(_saved_file(tmp_path).read_text())
    payload["format"] = 2
    _saved_file(tmp_path).write_text(json.dumps(payload))
    assert main(_full_run(tmp_path, "--resume")) == 2
    assert "was written by a newer hypersst (run-file format 2, this one reads format 1)" in capsys.readouterr().err


def test_failed_save_names_the_saved_runs(tmp_path, monkeypatch, capsys):
    from hypersst.tasks import reporting

    real_save = reporting.save_run
    saves = []

    def full_disk(*args, **kwargs):
        saves.append(args[0])
        if len(saves) == 2:
            raise OSError(28, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(reporting, "save_run", full_disk)
    assert main(_grid(tmp_path)) == 1
    error = capsys.readouterr().err
    assert "failed to save the run synthetic-nc-lorentz-k1.0-full-seed1.json" in error
    assert "(No space left on device); 1 of 8 runs are saved there" in error


def test_interrupt_after_the_runs_says_they_are_saved(tmp_path, monkeypatch, capsys):
    from hypersst.tasks import reporting

    def interrupted(records):
        raise KeyboardInterrupt

    monkeypatch.setattr(reporting, "summarize", interrupted)
    assert main(_full_run(tmp_path)) == 130
    error = capsys.readouterr().err
    assert f"interrupted; the runs that finished are saved in {tmp_path / 'runs'}" in error
    assert _saved_file(tmp_path).exists()


def test_sigterm_during_runs_saves_and_restores_handler(tmp_path, monkeypatch, capsys):
    import signal

    from hypersst.tasks import hgnn

    real_run = hgnn.run_hgnn
    calls = []

    def terminated_run(*args, **kwargs):
        calls.append(args[:5])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(hgnn, "run_hgnn", terminated_run)
    previous = signal.getsignal(signal.SIGTERM)
    assert main(_grid(tmp_path)) == 143
    assert "terminated (SIGTERM) with 1 of 8 runs finished and saved" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1
    assert signal.getsignal(signal.SIGTERM) is previous
