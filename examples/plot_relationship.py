"""
Exploring the learned relationship
==================================

``relationship_`` is ``p(source class | target class)``: here, which printed
characters each handwritten digit looks like to the glyph model. The direct approach averages the
source probabilities per class; the reverse approach inverts a logistic
regression with Bayes' rule.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from sk_cotuning import CategoryRelationship, CoTuningClassifier
from sk_cotuning.plotting import plot_relationship, top_source_classes

X, y = load_digits(return_X_y=True)
clf = CoTuningClassifier("glyphnet", max_epochs=1, verbose=0, random_state=0).fit(X[:600], y[:600])
R = clf.relationship_.relationship_
for digit, top in zip(clf.classes_, top_source_classes(R, clf.source_classes_, k=3)):
    print(digit, "->", ", ".join(f"{name} {p:.2f}" for name, p in top))

# %%
# The heatmap marks each digit's most likely source character.
plot_relationship(R, clf.classes_, clf.source_classes_)
plt.show()

# %%
# The same source logits, the reverse approach. The source model's outputs are
# computed once by the fitted network and can feed any CategoryRelationship.
logits, codes = clf.collect_outputs(X[:600], "source")
reverse = CategoryRelationship(method="reverse", random_state=0).fit(logits, y[:600])
print("reverse: chose C =", reverse.C_, "temperature", round(reverse.calibration_temperature_, 2))
for digit, top in zip(reverse.classes_, top_source_classes(reverse.relationship_, clf.source_classes_)):
    print(digit, "->", ", ".join(name for name, _ in top))
