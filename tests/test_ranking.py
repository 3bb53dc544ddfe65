"""rank_backbones: candidates scored on the target data, failures reported, bad input refused."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from torch import nn

import sk_cotuning
from sk_cotuning import logme_score, rank_backbones, regularized_h_score
from sk_cotuning.ranking import BackboneRanking


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:150], y[:150]


class NaNNet(nn.Module):
    """A model whose features are NaN: a diverged checkpoint."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.body(x) * float("nan"))


def test_pretrained_glyph_model_ranks_above_its_random_init(digits, capsys):
    X, y = digits
    ranking = rank_backbones({"glyphnet": "glyphnet",
                              "random": {"backbone": "glyphnet", "weights": None}}, X, y)
    assert isinstance(ranking, BackboneRanking)
    assert ranking["candidate"] == ["glyphnet", "random"] and ranking.best == "glyphnet"
    assert set(ranking) == {"candidate", "logme", "leep", "nce", "h_score", "seconds", "error"}
    assert all(s > 0 for s in ranking["seconds"]) and ranking["error"] == [None, None]
    assert ranking["leep"][0] > ranking["leep"][1]
    printed = capsys.readouterr().out
    assert "[1/2] glyphnet: logme=" in printed and "[2/2] random" in printed
    assert "glyphnet" in str(ranking).splitlines()[2]  # the table, best first


def test_the_features_scored_are_the_networks_pooled_features(digits):
    X, y = digits
    ranking = rank_backbones(["glyphnet"], X, y, scores=("logme", "regularized_h_score"),
                             verbose=0)
    clf = sk_cotuning.FineTuningClassifier("glyphnet", classes=np.unique(y), max_epochs=0,
                                           verbose=0).initialize()
    features = clf.forward(X)[2].numpy()  # skorch's own pass: (target, source, features)
    assert ranking["logme"][0] == pytest.approx(logme_score(features, y), rel=1e-5)
    assert ranking["regularized_h_score"][0] == pytest.approx(
        regularized_h_score(features, y), rel=1e-5)


def test_a_candidate_that_fails_is_reported_and_the_others_still_scored(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="'nope' could not be scored"):
        ranking = rank_backbones(["nope", "glyphnet"], X, y, sort_by="leep", verbose=0)
    assert ranking["candidate"] == ["glyphnet", "nope"]
    assert ranking["error"][0] is None and "Unknown backbone 'nope'" in ranking["error"][1]
    assert np.isnan(ranking["leep"][1])


def test_features_with_nan_are_reported_for_that_candidate(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="NaN"):
        ranking = rank_backbones({"nan": {"backbone": NaNNet(), "source_head": "fc"},
                                  "glyphnet": "glyphnet"}, X, y, verbose=0)
    assert ranking["candidate"][1] == "nan" and "NaN or infinity" in ranking["error"][1]


def test_a_score_that_is_not_finite_is_reported_never_tabled(digits, monkeypatch):
    from sk_cotuning import ranking as module

    X, y = digits
    leep, field = module.SCORES["leep"]
    calls = []

    def nan_first(outputs, labels):  # NaN for the first candidate only
        calls.append(1)
        return float("nan") if len(calls) == 1 else leep(outputs, labels)

    monkeypatch.setitem(module.SCORES, "leep", (nan_first, field))
    with pytest.warns(UserWarning, match="'first' could not be scored.*leep came out nan"):
        ranking = rank_backbones({"first": "glyphnet", "second": "glyphnet"}, X, y,
                                 scores=("logme", "leep"), verbose=0)
    assert ranking["candidate"] == ["second", "first"]
    assert ranking["error"][0] is None and np.isfinite(ranking["leep"][0])
    assert "leep came out nan" in ranking["error"][1]


@pytest.mark.parametrize("candidates, y_kind, error, match", [
    ([], "ok", ValueError, "candidates is empty"),
    ("glyphnet", "ok", TypeError, "candidates must be a list"),
    (["glyphnet"], "one class", ValueError, "single class|at least 2"),
    (["glyphnet"], "short", ValueError, "150 samples but y has 149"),
])
def test_bad_input(digits, candidates, y_kind, error, match):
    X, y = digits
    y = {"ok": y, "one class": np.zeros_like(y), "short": y[:-1]}[y_kind]
    with pytest.raises(error, match=match):
        rank_backbones(candidates, X, y, verbose=0)


def test_bad_scores_and_all_failing(digits):
    X, y = digits
    with pytest.raises(ValueError, match="Unknown score"):
        rank_backbones(["glyphnet"], X, y, scores=("logmee",))
    with pytest.raises(ValueError, match="sort_by='nce' is not among"):
        rank_backbones(["glyphnet"], X, y, scores=("logme",), sort_by="nce")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="No candidate could be scored"):
        rank_backbones(["nope"], X, y, verbose=0)


def test_one_architecture_with_two_weights_gets_two_names(digits):
    # both were named "glyphnet", and the list was refused as a name clash
    X, y = digits
    ranking = rank_backbones(["glyphnet", {"backbone": "glyphnet", "weights": None}], X, y,
                             verbose=0, random_state=0)
    assert ranking["candidate"] == ["glyphnet", "glyphnet (weights=None)"]


def test_one_score_by_name_orders_by_it(digits):
    X, y = digits
    ranking = rank_backbones(["glyphnet"], X, y, scores="leep", verbose=0)  # was split into letters
    assert set(ranking) == {"candidate", "leep", "seconds", "error"}
    # without logme (the default sort_by's score), the first score given orders the table
    ranking = rank_backbones({"random": {"backbone": "glyphnet", "weights": None},
                              "glyphnet": "glyphnet"}, X, y, scores=("nce", "leep"),
                             verbose=0, random_state=0)
    assert ranking["candidate"] == ["glyphnet", "random"]
    assert ranking["nce"] == sorted(ranking["nce"], reverse=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "'batch_size' parameter of rank_backbones"),
    (dict(amp="fp8"), "'amp' parameter of rank_backbones"),
    (dict(verbose=-1), "verbose must be an int >= 0"),
])
def test_shared_settings_are_checked_once_not_per_candidate(digits, kwargs, match):
    # a bad batch_size failed every candidate in turn, then said none could be scored
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no per-candidate warning first
        with pytest.raises(ValueError, match=match):
            rank_backbones(["glyphnet", "glyphnet #2"], X, y, **kwargs)


def test_random_state_makes_a_random_init_ranking_repeat(digits):
    X, y = digits
    random = {"random": {"backbone": "glyphnet", "weights": None}}
    with pytest.warns(UserWarning, match="random"):
        first = rank_backbones(random, X, y, scores=("logme",), random_state=0, verbose=0)
        again = rank_backbones(random, X, y, scores=("logme",), random_state=0, verbose=0)
        other = rank_backbones(random, X, y, scores=("logme",), random_state=1, verbose=0)
    assert first["logme"] == again["logme"] and first["logme"] != other["logme"]


def test_verbose_2_shows_a_progress_bar_per_candidate(digits, capsys):
    X, y = digits
    rank_backbones(["glyphnet"], X, y, scores=("logme",), batch_size=32, verbose=2)
    captured = capsys.readouterr()
    assert "glyphnet" in captured.err and "batch" in captured.err  # tqdm writes to stderr
    assert "[1/1] glyphnet: logme=" in captured.out
