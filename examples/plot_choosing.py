"""
Choosing a backbone and settings: rank, then search, then fit
==============================================================

Two questions come before any method: *which pre-trained model?* and *which
settings?* Fine-tuning every candidate at every grid point answers both, at a
cost few can pay. Here, on 10% of the UCI digits:

1. :func:`~sk_cotuning.rank_backbones` scores the candidates from one pass
   over the training images each (no training): the pre-trained GlyphNet and
   the same architecture with random weights;
2. successive halving over epochs (scikit-learn's ``HalvingGridSearchCV``
   with ``resource="max_epochs"``) searches ``trade_off`` x ``lr`` for the
   best-ranked one, giving every candidate one epoch, then the best half
   twice as many, and so on;
3. the chosen setting is refitted on all training images and tested.
"""

from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, StratifiedKFold, train_test_split

from sk_cotuning import CoTuningClassifier, rank_backbones, sample_rate_indices

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=540, stratify=y,
                                                    random_state=0)
idx = sample_rate_indices(y_train, 0.10, random_state=0)
X_small, y_small = X_train[idx], y_train[idx]

# %%
# 1. Rank the candidates (a few seconds each; nothing is trained)
ranking = rank_backbones(
    {"GlyphNet": "glyphnet", "random init": {"backbone": "glyphnet", "weights": None}},
    X_small, y_small, random_state=0,
)
print(ranking)

# %%
# LogME and H-score read the features, LEEP and NCE the source head's
# predictions. LogME, LEEP and NCE agree; H-score does not separate the two,
# because with more features than training images both feature sets separate
# the classes of so few images (it is near its maximum, n_classes - 1 = 9).
#
# 2. Search trade_off x lr by successive halving over epochs
search = HalvingGridSearchCV(
    CoTuningClassifier("glyphnet", batch_size=16, verbose=0, random_state=0),
    {"trade_off": [0.0, 2.3], "lr": [0.01, 0.03]},
    resource="max_epochs", min_resources=4, max_resources=16, factor=2,
    cv=StratifiedKFold(3), random_state=0,
).fit(X_small, y_small)
print("epochs per round:", search.n_resources_, "candidates per round:", search.n_candidates_)
print("chosen:", search.best_params_, f"(CV accuracy {search.best_score_:.3f})")

# %%
# 3. The refitted estimator, on the test images
print(f"test accuracy: {search.best_estimator_.score(X_test, y_test):.3f}")
