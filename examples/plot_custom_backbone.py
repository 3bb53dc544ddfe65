"""
A custom ``nn.Module`` backbone
===============================

Any model whose last layer is an ``nn.Linear`` classifier can be the source
model: pass the instance as ``backbone`` and the path of that layer as
``source_head``. The instance is deep-copied, so it is never modified. Its
inputs arrive as float32, as given (here the digits' 0..16 values, which the
model scales itself).

We pre-train a small multilayer perceptron on the glyph corpus (printed digits and letters) for a few
seconds, then transfer it to the digits.
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sk_cotuning import CoTuningClassifier, sample_rate_indices
from sk_cotuning.datasets import CHARACTERS, make_glyphs


class LetterMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(),
                                  nn.Linear(128, 64), nn.ReLU())
        self.classifier = nn.Linear(64, len(CHARACTERS))

    def forward(self, x):
        return self.classifier(self.body(x / 16.0))


# %%
# Pre-train on 40 renderings of each character (a few seconds).
glyphs, letters = make_glyphs(n_per_letter=40, seed=0)
source = LetterMLP()
torch.manual_seed(0)
optimizer = torch.optim.Adam(source.parameters(), lr=3e-3)
inputs, targets = torch.as_tensor(glyphs, dtype=torch.float32), torch.as_tensor(letters)
for _ in range(60):
    loss = nn.functional.cross_entropy(source(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"source training accuracy: {(source(inputs).argmax(1) == targets).float().mean():.3f}")

# %%
# Transfer: fine-tuning vs Co-Tuning on 10% of the digits.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=540, stratify=y, random_state=0)
idx = sample_rate_indices(y_train, 0.1, random_state=0)
for trade_off in (0.0, 2.3):
    clf = CoTuningClassifier(source, source_head="classifier", trade_off=trade_off, lr=0.05,
                             max_epochs=40, batch_size=16, verbose=0, random_state=0)
    clf.fit(X_train[idx], y_train[idx])
    print(f"trade_off={trade_off}: test accuracy {clf.score(X_test, y_test):.3f}")
print("the source model is untouched:", isinstance(source.classifier, nn.Linear))
