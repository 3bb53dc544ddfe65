"""
Tuning ``trade_off`` with GridSearchCV
======================================

``trade_off`` weighs the Co-Tuning term; ``0`` is plain fine-tuning. A grid
search picks it on the training data alone. Each cross-validation fold learns
its own category relationship from its own training part.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from sk_cotuning import CoTuningClassifier, sample_rate_indices

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=540, stratify=y, random_state=0
)
idx = sample_rate_indices(y_train, 0.1, random_state=0)

grid = GridSearchCV(
    CoTuningClassifier("glyphnet", max_epochs=20, batch_size=16, verbose=0,
                       random_state=0),
    {"trade_off": [0.0, 1.0, 2.3, 5.0]},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
).fit(X_train[idx], y_train[idx])

results = pd.DataFrame(grid.cv_results_)[["param_trade_off", "mean_test_score", "std_test_score"]]
print(results.to_string(index=False))
print("best:", grid.best_params_, "test accuracy:", round(grid.score(X_test, y_test), 3))

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.errorbar(results["param_trade_off"].astype(float), results["mean_test_score"],
            yerr=results["std_test_score"], marker="o", capsize=4)
ax.set_xlabel("trade_off")
ax.set_ylabel("cross-validated accuracy")
ax.set_title("Grid search on 10% of the digits")
plt.show()
