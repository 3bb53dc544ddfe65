"""
Ranking source models with LEEP
===============================

LEEP scores a source model on the target data before any training. We compare
three candidates for the digits: the pre-trained GlyphNet, the same
architecture with random weights, and GlyphNet whose source head was
scrambled (its features intact, its classes meaningless). Then we check the
ranking against the accuracy each reaches with Co-Tuning on 5% of the digits.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sk_cotuning import CoTuningClassifier, leep_score, sample_rate_indices
from sk_cotuning.backbones.glyphnet import WEIGHTS_FILE

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=540, stratify=y, random_state=0
)
idx = sample_rate_indices(y_train, 0.05, random_state=0)

state = torch.load(WEIGHTS_FILE, weights_only=True)
scrambled = dict(state)
generator = torch.Generator().manual_seed(0)
perm = torch.randperm(len(state["fc.bias"]), generator=generator)
scrambled["fc.weight"], scrambled["fc.bias"] = state["fc.weight"][perm], state["fc.bias"][perm]
candidates = {"GlyphNet": "DEFAULT", "scrambled head": scrambled, "random init": None}

# %%
leep, accuracy = {}, {}
for name, weights in candidates.items():
    clf = CoTuningClassifier("glyphnet", weights=weights, max_epochs=40,
                             batch_size=16, verbose=0, random_state=0)
    clf.fit(X_train[idx], y_train[idx])
    # LEEP of the source outputs on the training images (also stored as clf.leep_)
    logits, _ = clf.collect_outputs(X_train[idx], "source")
    leep[name] = leep_score(logits, y_train[idx])
    accuracy[name] = clf.score(X_test, y_test)
    print(f"{name:<15} LEEP {leep[name]:+.3f}   Co-Tuning accuracy {accuracy[name]:.3f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for name in candidates:
    ax.scatter(leep[name], 100 * accuracy[name])
    ax.annotate(name, (leep[name], 100 * accuracy[name]), textcoords="offset points", xytext=(5, 5))
ax.set_xlabel("LEEP score (before training)")
ax.set_ylabel("test accuracy after Co-Tuning (%)")
plt.show()
