"""
Choosing the fine-tuning method with GridSearchCV
=================================================

``regularizer`` is an ordinary parameter of
:class:`~sk_cotuning.FineTuningClassifier`, so the method itself -- plain
fine-tuning (``None``), L2-SP, BSS, LP-FT, Co-Tuning, a combination -- can be
chosen by cross-validation on the training data alone, alongside its
hyper-parameters. Every fold builds the network fresh and prepares the
method (Co-Tuning's relationship, LP-FT's probe, ...) from its own training
part.

Here: the bundled GlyphNet (printed characters) fine-tuned on 10% of the UCI
digits, on the CPU in well under a minute.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from sk_cotuning import FineTuningClassifier, sample_rate_indices

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=540, stratify=y, random_state=0
)
idx = sample_rate_indices(y_train, 0.1, random_state=0)

methods = [None, "l2_sp", "bss", "lp_ft", "co_tuning", ["co_tuning", "bss"]]
grid = GridSearchCV(
    FineTuningClassifier("glyphnet", max_epochs=10, batch_size=16, verbose=0, random_state=0),
    [
        {"regularizer": methods},
        # a method's own hyper-parameters join the same search
        {"regularizer": ["co_tuning"], "regularizer__trade_off": [1.0, 5.0]},
    ],
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
).fit(X_train[idx], y_train[idx])


def label(params):
    spec = params["regularizer"]
    name = "+".join(spec) if isinstance(spec, list) else str(spec or "plain fine-tuning")
    extra = {k.split("__", 1)[1]: v for k, v in params.items() if k != "regularizer"}
    return name + (f" {extra}" if extra else "")


results = pd.DataFrame({
    "method": [label(p) for p in grid.cv_results_["params"]],
    "cv accuracy": grid.cv_results_["mean_test_score"],
    "std": grid.cv_results_["std_test_score"],
}).sort_values("cv accuracy", ascending=False)
print(results.to_string(index=False))
print("chosen:", label(grid.best_params_), "| test accuracy:", round(grid.score(X_test, y_test), 3))

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.barh(results["method"], results["cv accuracy"], xerr=results["std"], capsize=3)
ax.invert_yaxis()
ax.set_xlim(max(0.0, results["cv accuracy"].min() - 0.1), 1.0)
ax.set_xlabel("cross-validated accuracy (3 folds of the training subset)")
ax.set_title("Which method? GlyphNet -> 10% of the digits")
fig.tight_layout()
plt.show()
