"""The methods Co-Tuning is compared with (issue 12): formulas, gradient flow, persistence.

Each loss is checked against the formula re-implemented here from the
papers / tllib on random tensors, and each method for what it must leave
alone: the frozen pre-trained copies stay the pre-trained weights, never
reach the optimiser, and stay in evaluation mode.
"""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import GridSearchCV
from torch import nn

from sk_cotuning import FineTuningClassifier
from sk_cotuning.regularization import (
    BSS,
    DELTA,
    L2SP,
    LPFT,
    LWF,
    REGULARIZERS,
    Combined,
    CoTuning,
    StochNorm,
    make_regularizer,
)
from sk_cotuning.regularization._pretrained import linear_probe, stage_outputs
from sk_cotuning.regularization.bss import batch_spectral_shrinkage
from sk_cotuning.regularization.delta import attention_feature_distance, normalize_attention
from sk_cotuning.regularization.lwf import distillation_loss

PARAMS = dict(max_epochs=2, batch_size=16, lr=0.05, verbose=0, random_state=0, device="cpu")


class TwoStageNet(nn.Module):
    """Two conv stages (8x8, then 4x4), BatchNorm, a 6-way source head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(6, 10, 3, stride=2, padding=1), nn.BatchNorm2d(10),
                                   nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(10, 6)

    def forward(self, x):
        return self.fc(self.pool(self.stage(self.stem(x))))


@pytest.fixture
def net2():
    torch.manual_seed(0)
    return TwoStageNet()


def _fit(backbone, X, y, **kwargs):
    return FineTuningClassifier(backbone, **{**PARAMS, **kwargs}).fit(X, y)


# ------------------------------------------------------------------ formulas
def test_bss_matches_tllib_formula():
    torch.manual_seed(0)
    f = torch.randn(16, 8, requires_grad=True)
    for k in (1, 3):
        s = torch.svd(f.t())[1]  # tllib: torch.svd(feature.t())
        expected = sum(s[s.size(0) - 1 - i] ** 2 for i in range(k))
        torch.testing.assert_close(batch_spectral_shrinkage(f, k), expected, rtol=1e-5, atol=1e-6)
    batch_spectral_shrinkage(f, 1).backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    # k beyond min(N, D) penalises every singular value
    small = torch.randn(3, 8)
    torch.testing.assert_close(batch_spectral_shrinkage(small, 10),
                               torch.linalg.svdvals(small).pow(2).sum())


def test_distillation_matches_tllib_formula():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 7), torch.randn(5, 7)
    for T in (1.0, 3.0):
        kl = nn.KLDivLoss(reduction="batchmean")
        expected = kl(F.log_softmax(student / T, dim=-1), F.softmax(teacher / T, dim=-1))
        torch.testing.assert_close(distillation_loss(student, teacher, T), expected)
    assert float(distillation_loss(teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_delta_distance_matches_tllib_formula():
    torch.manual_seed(0)
    s = [torch.randn(4, 3, 5, 5, requires_grad=True), torch.randn(4, 6, 2, 2, requires_grad=True)]
    t = [torch.randn(4, 3, 5, 5), torch.randn(4, 6, 2, 2)]
    a = [torch.softmax(torch.randn(3), 0), torch.softmax(torch.randn(6), 0)]
    expected = 0.0
    for fm_src, fm_tgt, att in zip(t, s, a):  # tllib's AttentionBehavioralRegularization
        b, c, h, w = fm_src.shape
        distance = torch.norm(fm_tgt.reshape(b, c, h * w) - fm_src.reshape(b, c, h * w), 2, 2)
        expected = expected + 0.5 * torch.sum(c * torch.mul(att, distance ** 2) / (h * w))
    value = attention_feature_distance(s, t, a, reduction="sum")
    torch.testing.assert_close(value, expected)
    value.backward()
    assert all(x.grad is not None for x in s)


def test_delta_mean_distance_is_the_attention_weighted_mse_per_element():
    torch.manual_seed(1)
    s = [torch.randn(4, 3, 5, 5), torch.randn(4, 6, 2, 2)]
    t = [torch.randn(4, 3, 5, 5), torch.randn(4, 6, 2, 2)]
    a = [torch.softmax(torch.randn(3), 0), torch.softmax(torch.randn(6), 0)]
    expected = 0.0
    for fs, ft, att in zip(s, t, a):  # by hand: loop over channels
        for c in range(fs.shape[1]):
            expected += float(att[c]) * float(((fs[:, c] - ft[:, c]) ** 2).mean())
    assert float(attention_feature_distance(s, t, a)) == pytest.approx(expected, rel=1e-5)
    # the same scale for any batch size: the batch repeated gives the same value
    s2, t2 = [torch.cat([x, x]) for x in s], [torch.cat([x, x]) for x in t]
    assert float(attention_feature_distance(s2, t2, a)) == pytest.approx(expected, rel=1e-5)
    # a uniform shift of 1 everywhere: distance 1 per layer
    ones = [torch.full_like(x, 1.0) for x in t]
    assert float(attention_feature_distance([x + 1 for x in t], t, a)) == pytest.approx(2.0)
    assert float(attention_feature_distance(ones, ones, a)) == 0.0


def test_attention_normalisation_matches_tllib():
    w = np.array([0.3, -0.1, 2.0, 0.0])
    z = (w - w.mean()) / w.std()
    expected = np.exp(z / 5) / np.exp(z / 5).sum()
    np.testing.assert_allclose(normalize_attention(w), expected)
    np.testing.assert_allclose(normalize_attention(np.ones(3)), np.full(3, 1 / 3))


def test_l2_sp_terms_match_the_formula(tiny_backbone, image_data):
    X, y = image_data
    start = {k: v.clone() for k, v in tiny_backbone.body.state_dict(keep_vars=True).items()
             if isinstance(v, nn.Parameter)}
    clf = _fit(tiny_backbone, X, y, regularizer="l2_sp", regularizer__alpha=0.5, regularizer__beta=0.1)
    net = clf.module_
    reg = clf.regularizer_
    params = dict(net.features.named_parameters())
    assert len(params) == len(start)
    # the starting point is the pre-trained copy, not the trained weights
    flat_w = torch.cat([p.detach().flatten() for p in net.features.parameters()])
    flat_w0 = reg.start
    flat_pre = torch.cat([v.flatten() for v in start.values()])
    torch.testing.assert_close(torch.sort(flat_w0)[0], torch.sort(flat_pre)[0])
    assert not torch.allclose(flat_w, flat_w0)
    terms = reg(None, torch.zeros(1, dtype=torch.long))
    # by hand, parameter by parameter, from the pre-trained copies taken above
    params = {k.removeprefix("body."): v for k, v in params.items()}  # the features hold the body
    assert set(params) == set(start)
    expected = sum(0.5 * (params[k].detach() - start[k].detach()).pow(2).sum() for k in start)
    torch.testing.assert_close(terms[0].value, expected)
    head = net.target_head
    torch.testing.assert_close(terms[1].value, 0.5 * (head.weight.pow(2).sum() + head.bias.pow(2).sum()))
    assert [t.weight for t in terms] == [0.5, 0.1]
    assert np.isfinite(clf.history[-1, "l2_sp_loss"]) and clf.history[-1, "l2_sp_loss"] > 0


# --------------------------------------------------------- gradient flow
def _optimised(clf):
    return {id(p) for group in clf.optimizer_.param_groups for p in group["params"]}


@pytest.mark.parametrize("name", ["lwf", "delta"])
def test_teacher_stays_pretrained_frozen_and_out_of_the_optimiser(net2, image_data, name):
    X, y = image_data
    pretrained = {k: v.clone() for k, v in net2.state_dict().items()}
    clf = _fit(net2, X, y, regularizer=name)
    teacher = clf.regularizer_.teacher
    clf.module_.train()
    assert not teacher.training
    for key, value in teacher.features.state_dict().items():
        torch.testing.assert_close(value, pretrained[key])  # BN statistics included
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not (_optimised(clf) & {id(p) for p in teacher.parameters()})
    # ...while the fine-tuned backbone moved
    moved = clf.module_.features.state_dict()["stage.0.weight"]
    assert not torch.allclose(moved, pretrained["stage.0.weight"])
    devices = {b.device for b in clf.regularizer_.buffers()} | {p.device for p in teacher.parameters()}
    assert devices == {next(clf.module_.parameters()).device}


def test_lwf_term_is_the_distillation_from_the_pretrained_head(net2, image_data):
    X, y = image_data
    clf = _fit(net2, X, y, regularizer="lwf", regularizer__T=2.0, max_epochs=1)
    net = clf.module_
    x = net.normalize(torch.as_tensor(X[:8]))
    net.train()
    net.zero_grad(set_to_none=True)
    out = net(torch.as_tensor(X[:8]))
    value = clf.regularizer_(out, torch.zeros(8, dtype=torch.long))[0].value
    with torch.no_grad(), clf.regularizer_.teacher.batch_statistics():
        teacher = clf.regularizer_.teacher.logits(x)
    torch.testing.assert_close(value, distillation_loss(out[1], teacher, 2.0))
    # gradients reach the backbone through the frozen source head (as in tllib),
    # never the source head itself or the teacher
    value.backward()
    assert net.features.stem[0].weight.grad is not None
    assert net.source_head.weight.grad is None and not net.source_head.weight.requires_grad
    assert not (_optimised(clf) & {id(p) for p in net.source_head.parameters()})
    assert all(p.grad is None for p in clf.regularizer_.teacher.parameters())
    net.eval()
    assert clf.regularizer_(net(torch.as_tensor(X[:8])), None) == []  # eval: not computed


def test_delta_chooses_stages_and_learns_attention(net2, image_data, tmp_path):
    X, y = image_data
    clf = _fit(net2, X, y, regularizer="delta")
    reg = clf.regularizer_
    assert [name for name, _ in reg.layers_] == ["stem", "stage"]  # the last module of each size
    assert [c for _, c in reg.layers_] == [6, 10]
    att = torch.split(reg.channel_attention, [6, 10])
    for a in att:
        assert float(a.sum()) == pytest.approx(1.0, abs=1e-5) and (a > 0).all()
    assert clf.history[-1, "delta_loss"] > 0
    # the term is the formula on the captured maps, gradients reach the backbone only
    net = clf.module_
    net.train()
    net.zero_grad(set_to_none=True)
    out = net(torch.as_tensor(X[:8]))
    terms = reg(out, torch.zeros(8, dtype=torch.long))
    assert terms[0].value > 0
    terms[0].value.backward()
    assert net.features.stem[0].weight.grad is not None
    assert net.target_head.weight.grad is None
    # saved and loaded: layers, attention and the frozen copy come back
    clf.save_params(f_params=tmp_path / "p.pt")
    new = FineTuningClassifier(TwoStageNet(), regularizer="delta", classes=clf.classes_, **PARAMS)
    new.initialize()
    new.load_params(f_params=tmp_path / "p.pt")
    assert new.regularizer_.layers_ == reg.layers_
    torch.testing.assert_close(new.regularizer_.channel_attention, reg.channel_attention)
    np.testing.assert_allclose(new.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    # the loaded copy hooks the same layers: a training step gives the same term
    new.module_.train()
    torch.manual_seed(0)
    a = new.regularizer_(new.module_(torch.as_tensor(X[:8])), None)[0].value
    net.train()
    torch.manual_seed(0)
    b = reg(net(torch.as_tensor(X[:8])), None)[0].value
    torch.testing.assert_close(a, b)


def _shifted_images(n=24, seed=0):
    """Images far from anything a backbone's statistics were estimated on."""
    rng = np.random.default_rng(seed)
    return (0.9 + 0.1 * rng.random((n, 3, 8, 8))).astype(np.float32), np.arange(n) % 3


def _pretrain_batchnorm(net, seed=1):
    """Give the backbone's BatchNorm layers statistics of other data (the 'source')."""
    rng = np.random.default_rng(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.as_tensor(rng.normal(0, 3, (16, 3, 8, 8)), dtype=torch.float32))
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return net


@pytest.mark.parametrize("name", ["delta", "lwf"])
def test_regularisers_towards_the_start_are_zero_at_step_0(net2, name):
    # out-of-domain data: the student normalises by batch statistics, so must the teacher
    X, y = _shifted_images()
    net2 = _pretrain_batchnorm(net2)
    clf = FineTuningClassifier(net2, regularizer=name, max_epochs=0, **{
        k: v for k, v in PARAMS.items() if k != "max_epochs"})
    clf.fit(X, y)  # builds the network; no epoch
    reg = clf.regularizer_
    reg.prepare(clf, clf.get_dataset(X, y))
    net = clf.module_
    net.train()
    out = net(torch.as_tensor(X[:16]))
    term = reg(out, torch.as_tensor(y[:16]))[0]
    assert term.name == name
    assert abs(float(term.value.detach())) < 1e-5
    # tllib's teacher (evaluation mode) is far from it on the same batch
    x = net.normalize(torch.as_tensor(X[:16]))
    with torch.no_grad():
        eval_logits = reg.teacher.head(reg.teacher(x)) if name == "lwf" else None
        eval_maps = reg.teacher.features.stem(x) if name == "delta" else None
    if name == "lwf":
        assert float(distillation_loss(out[1], eval_logits, reg.T)) > 1e-3
    else:
        assert float(((net.features.stem(x) - eval_maps) ** 2).mean()) > 1e-2
    # the pre-trained statistics were not touched by the teacher's batch pass
    for key, value in reg.teacher.features.state_dict().items():
        torch.testing.assert_close(value, net2.state_dict()[key])


def test_delta_removal_attention_is_the_loss_rise(net2, image_data):
    X, y = image_data
    clf = FineTuningClassifier(net2, regularizer="delta", regularizer__attention="removal",
                               regularizer__layers=["stage"], **PARAMS)
    clf.max_epochs = 0
    clf.fit(X, y)  # builds the network; no epoch, so no preparation yet
    reg = clf.regularizer_
    dataset = clf.get_dataset(X, y)
    reg.prepare(clf, dataset)
    assert reg.layers_ == [("stage", 10)]
    # recompute channel 0's score by hand
    feats, codes = clf.collect_outputs(dataset, "features")
    W, b = (torch.as_tensor(a, dtype=torch.float32) for a in linear_probe(feats, codes, 3))
    x = clf.module_.normalize(torch.as_tensor(X))
    codes_t = torch.as_tensor(codes).long()
    teacher = reg.teacher
    with torch.no_grad():
        base = F.cross_entropy(teacher(x) @ W.T + b, codes_t, reduction="sum")
        h = teacher.features.stage.register_forward_hook(
            lambda m, a, out: out * torch.tensor([0.0] + [1.0] * 9).view(1, 10, 1, 1))
        removed = F.cross_entropy(teacher(x) @ W.T + b, codes_t, reduction="sum")
        h.remove()
    scores = reg._channel_scores(clf, dataset, [10])[0]
    assert scores[0] == pytest.approx(float(removed - base) / len(X), rel=1e-4, abs=1e-6)


def test_stochnorm_mixes_batch_and_moving_statistics(net2, image_data):
    X, y = image_data
    x = torch.as_tensor(X[:16])
    plain = FineTuningClassifier(net2, classes=np.unique(y), **PARAMS).initialize()
    outs = {}
    for p in (0.0, 1.0, 0.5):
        clf = FineTuningClassifier(net2, regularizer="stochnorm", regularizer__p=p,
                                   classes=np.unique(y), **PARAMS)
        clf.initialize()
        net = clf.module_
        bn = net.features.stem[1]
        with torch.no_grad():
            bn.running_mean.fill_(0.3)  # distinct moving statistics
            bn.running_var.fill_(2.0)
        net.train()
        before = bn.running_mean.clone()
        torch.manual_seed(0)
        stem = net.features.stem(net.normalize(x))
        assert not torch.equal(bn.running_mean, before)  # still updated, as in tllib
        ref_bn = nn.BatchNorm2d(6)
        ref_bn.load_state_dict({**bn.state_dict(), "running_mean": before,
                                "running_var": torch.full((6,), 2.0)})
        conv = net.features.stem[0](net.normalize(x))
        z_moving = F.relu(F.batch_norm(conv, before, torch.full((6,), 2.0), bn.weight, bn.bias,
                                       False, 0.0, bn.eps))
        z_batch = F.relu(F.batch_norm(conv, None, None, bn.weight, bn.bias, True, 0.0, bn.eps))
        if p == 0.0:
            torch.testing.assert_close(stem, z_moving)
        elif p == 1.0:
            torch.testing.assert_close(stem, z_batch)
        else:  # every channel is one branch or the other, and both occur
            kinds = []
            for c in range(6):
                if torch.allclose(stem[:, c], z_moving[:, c]):
                    kinds.append(0)
                else:
                    torch.testing.assert_close(stem[:, c], z_batch[:, c])
                    kinds.append(1)
            assert 0 < sum(kinds) < 6
        outs[p] = stem
    # evaluation is plain BatchNorm
    clf.module_.eval()
    plain.module_.load_state_dict(clf.module_.state_dict(), strict=False)
    plain.module_.eval()
    torch.testing.assert_close(clf.module_(x)[0], plain.module_(x)[0])


def test_stochnorm_fits_and_needs_batchnorm(image_data):
    X, y = image_data
    _fit(TwoStageNet(), X, y, regularizer="stochnorm")
    no_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    with pytest.raises(ValueError, match="StochNorm needs BatchNorm"):
        _fit(no_bn, X, y, regularizer="stochnorm", source_head="3")


def test_lp_ft_starts_from_the_linear_probe(net2, image_data):
    X, y = image_data
    clf = _fit(net2, X, y, regularizer="lp_ft", lr=1e-12, max_epochs=1)
    # the probe saw the pre-trained features (training then moved BatchNorm's statistics)
    pre = FineTuningClassifier(net2, classes=clf.classes_, **PARAMS).initialize()
    feats, codes = pre.collect_outputs(pre.get_dataset(X, y), "features")
    weight, bias = linear_probe(feats, codes, 3)
    np.testing.assert_allclose(clf.module_.target_head.weight.detach().numpy(), weight, atol=1e-4)
    np.testing.assert_allclose(clf.module_.target_head.bias.detach().numpy(), bias, atol=1e-4)
    expected = ((feats @ weight.T + bias).argmax(1) == codes).mean()
    assert clf.regularizer_.probe_accuracy_ == pytest.approx(expected)
    assert expected > 1 / 3 + 0.1  # better than chance on 3 classes


def test_linear_probe_handles_two_and_missing_classes():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 3))
    codes = (f[:, 0] > 0).astype(int) * 2  # classes 0 and 2 of 3; class 1 absent
    w, b = linear_probe(f, codes, 3)
    pred = (f @ w.T + b).argmax(1)
    assert (pred == codes).mean() > 0.9 and not (pred == 1).any()
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe(f, np.zeros(40, int), 3)


def test_stage_outputs_picks_the_last_module_per_resolution(net2):
    layers = stage_outputs(net2, torch.zeros(2, 3, 8, 8))
    assert layers == [("stem", 6), ("stage", 10)]


# ------------------------------------------------------------ the API
def tensors_in(obj) -> int:
    """How many torch tensors pickling ``obj`` writes."""
    import io

    count = []

    class Counting(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, torch.Tensor):
                count.append(1)
            return None

    Counting(io.BytesIO()).dump(obj)
    return len(count)


def test_every_method_by_name_fits_predicts_pickles_and_reloads(net2, image_data, tmp_path):
    X, y = image_data
    assert set(REGULARIZERS) == {"co_tuning", "l2_sp", "delta", "bss", "lwf", "stochnorm", "lp_ft"}
    for name in REGULARIZERS:
        clf = _fit(net2, X, y, regularizer=name)
        proba = clf.predict_proba(X)
        assert np.isfinite(proba).all()
        for term in clf.regularizer_.terms:
            assert np.isfinite(clf.history[-1, f"{term}_loss"])
        np.testing.assert_allclose(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba, atol=1e-6)
        # every tensor the fit made travels in the state skorch maps to the CPU (a GPU fit
        # loads anywhere); the backbone parameter is the user's module, pickled as given
        assert tensors_in({k: v for k, v in clf.__getstate__().items()
                           if k not in ("__cuda_dependent_attributes__", "backbone")}) == 0, name
        clf.save_params(f_params=tmp_path / f"{name}.pt")
        new = FineTuningClassifier(TwoStageNet(), regularizer=name, classes=clf.classes_, **PARAMS)
        new.initialize()
        new.load_params(f_params=tmp_path / f"{name}.pt")
        np.testing.assert_allclose(new.predict_proba(X), proba, atol=1e-6, err_msg=name)


def test_default_weight_decay_follows_the_method(tiny_backbone, image_data):
    X, y = image_data
    wd = lambda clf: {g["weight_decay"] for g in clf.optimizer_.param_groups}  # noqa: E731
    assert wd(_fit(tiny_backbone, X, y, max_epochs=1)) == {5e-4}
    assert wd(_fit(tiny_backbone, X, y, max_epochs=1, regularizer="l2_sp")) == {0.0}
    assert wd(_fit(tiny_backbone, X, y, max_epochs=1, regularizer=["co_tuning", "l2_sp"])) == {0.0}
    assert wd(_fit(tiny_backbone, X, y, max_epochs=1, regularizer="l2_sp",
                   optimizer__weight_decay=1e-3)) == {1e-3}


def test_combination_terms_params_and_search(net2, image_data):
    X, y = image_data
    clf = FineTuningClassifier(net2, regularizer=["co_tuning", "bss"],
                               regularizer__co_tuning__trade_off=1.0,
                               regularizer__bss__k=2, **PARAMS).fit(X, y)
    reg = clf.regularizer_
    assert isinstance(reg, Combined) and reg.terms == ("cotuning", "bss")
    assert reg.members["co_tuning"].trade_off == 1.0 and reg.members["bss"].k == 2
    assert {"cotuning_loss", "bss_loss"} <= set(clf.history[-1])
    assert reg.needs == {"source", "features"} and clf.module_.use_source_head
    params = reg.get_params()
    assert params["co_tuning__trade_off"] == 1.0 and params["bss__k"] == 2
    # the regulariser itself is a searchable parameter
    search = GridSearchCV(
        FineTuningClassifier(net2, **{**PARAMS, "max_epochs": 1}),
        {"regularizer": [None, "l2_sp", ["co_tuning", "bss"]]}, cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_instances_and_combinations_are_cloned_not_modified(net2, image_data):
    X, y = image_data
    mine = DELTA(alpha=0.1)
    clf = _fit(net2, X, y, regularizer=[CoTuning(trade_off=1.0), mine])
    assert mine.layers_ == [] and "_attached_to" not in mine.__dict__
    assert clf.regularizer_.members["delta"].alpha == 0.1


@pytest.mark.parametrize(
    "spec, params, error, match",
    [
        ("l2_sp", {"alpha": -1}, ValueError, r"'alpha' parameter of L2SP must be a float in the range \[0.0, inf\)"),
        ("bss", {"k": 0}, ValueError, r"'k' parameter of BSS must be an int in the range \[1, inf\)"),
        ("lwf", {"T": 0}, ValueError, r"'T' parameter of LWF must be a float in the range \(0.0, inf\)"),
        ("stochnorm", {"p": 1.5}, ValueError, r"'p' parameter of StochNorm must be a float in the range \[0.0, 1.0\]"),
        ("lp_ft", {"C": -1}, ValueError, r"'C' parameter of LPFT must be a float in the range \(0.0, inf\)"),
        ("delta", {"attention": "exact"}, ValueError, "'attention' parameter of DELTA must be a str among"),
        ("delta", {"layers": ["nope"]}, ValueError, "has no module 'nope'"),
        ("delta", {"layers": "stem"}, ValueError, "'layers' parameter of DELTA must be"),
        (["l2_sp", "delta"], {}, ValueError, "must not share loss terms"),
        (["co_tuning", "bsss"], {}, ValueError, "Unknown regularizer 'bsss'"),
        (["co_tuning", "bss"], {"trade_off": 1}, ValueError, "<part>__<param>"),
        (["co_tuning", "co_tuning"], {}, ValueError, "must be unique"),
    ],
)
def test_bad_method_parameters(net2, image_data, spec, params, error, match):
    X, y = image_data
    kwargs = {f"regularizer__{k}": v for k, v in params.items()}
    with pytest.raises(error, match=match):
        _fit(net2, X, y, regularizer=spec, **kwargs)


def test_classes_are_exported():
    for cls in (BSS, DELTA, L2SP, LPFT, LWF, StochNorm):
        assert make_regularizer(cls.name, {}).__class__ is cls


def test_stage_outputs_prefer_stage_containers_over_the_next_stages_first_layer():
    # the next stage's first 1x1 convolution still runs at the old resolution (ResNet,
    # EfficientNet): the stage itself is the feature map, not that convolution
    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.expand = nn.Conv2d(cin, cout * 2, 1)
            self.down = nn.Conv2d(cout * 2, cout, 3, stride=stride, padding=1)

        def forward(self, x):
            return self.down(self.expand(x))

    net = nn.Sequential()
    net.add_module("stem", nn.Conv2d(3, 4, 3, padding=1))
    net.add_module("stage1", nn.Sequential(Block(4, 6, 1), Block(6, 6, 1)))
    net.add_module("stage2", nn.Sequential(Block(6, 8, 2), Block(8, 8, 1)))
    layers = stage_outputs(net, torch.zeros(2, 3, 8, 8))
    assert layers == [("stage1", 6), ("stage2", 8)]


# ------------------------------------------------- one meaning per number
@pytest.mark.parametrize("spec", ["co_tuning", "l2_sp", "delta", "lwf", "bss"])
def test_valid_loss_is_the_target_criterion_for_every_method(net2, image_data, spec):
    from sklearn.metrics import log_loss
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    X, y = image_data
    codes = np.unique(y, return_inverse=True)[1]  # the classes_ order
    clf = FineTuningClassifier(net2, regularizer=spec, **PARAMS,
                               train_split=predefined_split(Dataset(X[:24], y[:24])))
    clf.fit(X, y)
    last = clf.history[-1]
    # valid_loss is the cross-entropy of the predictions on the validation images, nothing more
    expected = log_loss(codes[:24], clf.predict_proba(X[:24]), labels=[0, 1, 2])
    assert last["valid_loss"] == pytest.approx(expected, rel=1e-4)
    computed_in_eval = {"co_tuning": ["cotuning"], "l2_sp": ["l2_sp", "head_l2"],
                        "delta": ["head_l2"], "lwf": [], "bss": ["bss"]}[spec]
    for term in clf.regularizer_.terms:
        assert (f"valid_{term}_loss" in last) == (term in computed_in_eval), term
    if spec == "co_tuning":  # the validation term is the soft-target loss on those images
        reg = clf.regularizer_
        clf.module_.eval()
        with torch.no_grad():
            out = clf.module_(torch.as_tensor(X[:24]))
        value = float(reg(out, torch.as_tensor(codes[:24]))[0].value)
        assert last["valid_cotuning_loss"] == pytest.approx(value, rel=1e-4)


def test_bss_skips_the_short_last_batch_of_an_epoch(net2):
    torch.manual_seed(0)
    reg = BSS()
    reg.train()
    full, short = torch.randn(16, 10), torch.randn(4, 10)
    out = lambda f: (None, None, f)  # noqa: E731
    assert float(reg(out(full), None)[0].value) == pytest.approx(
        float(torch.linalg.svdvals(full)[-1] ** 2), rel=1e-5)
    assert float(reg(out(short), None)[0].value) == 0.0  # smaller than a full batch: skipped
    # a fit whose data is smaller than one batch: every batch is full size
    small = BSS().train()
    assert float(small(out(short), None)[0].value) > 0
    # validation batches are scored whatever their size
    reg.eval()
    assert float(reg(out(short), None)[0].value) > 0


def test_stochnorm_prepare_reestimates_the_moving_statistics_on_the_training_split(net2):
    X, y = _shifted_images(30)
    net2 = _pretrain_batchnorm(net2)
    source_mean = net2.stem[1].running_mean.clone()
    for reestimate in (True, False):
        clf = FineTuningClassifier(net2, regularizer="stochnorm", max_epochs=0,
                                   regularizer__reestimate=reestimate,
                                   **{k: v for k, v in PARAMS.items() if k != "max_epochs"})
        clf.fit(X, y)
        reg, net = clf.regularizer_, clf.module_
        reg.prepare(clf, clf.get_dataset(X, y))
        bn = net.features.stem[1]
        if not reestimate:
            torch.testing.assert_close(bn.running_mean, source_mean)
            continue
        with torch.no_grad():  # the population statistics of the training images, by hand
            conv = net.features.stem[0](net.normalize(torch.as_tensor(X)))
        batches = [conv[i:i + 16] for i in range(0, 30, 16)]
        mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
        assert bn.momentum == 0.1 and reg.stochastic


def test_source_head_trains_unless_every_reader_keeps_it_frozen(net2, image_data):
    X, y = image_data
    for spec, trains in (("co_tuning", True), ("lwf", False), (["co_tuning", "lwf"], True),
                         (["lwf", "bss"], False)):
        clf = _fit(net2, X, y, regularizer=spec, max_epochs=1)
        head = {id(p) for p in clf.module_.source_head.parameters()}
        assert bool(_optimised(clf) & head) == trains, spec


def test_a_combination_prepares_from_one_pass_of_the_pretrained_network(net2, image_data):
    X, y = image_data
    passes = []

    class Counting(FineTuningClassifier):
        def _collect(self, fields, X, desc):
            passes.append(tuple(fields))
            return super()._collect(fields, X, desc)

    clf = Counting(net2, regularizer=["co_tuning", "lp_ft"], **{**PARAMS, "max_epochs": 1}).fit(X, y)
    assert passes == [("features", "source")]  # one pass for both parts
    alone = FineTuningClassifier(net2, regularizer="co_tuning", **{**PARAMS, "max_epochs": 1}).fit(X, y)
    np.testing.assert_allclose(clf.regularizer_.members["co_tuning"].soft_targets,
                               alone.regularizer_.soft_targets, atol=1e-6)
    # a part that changes the network (StochNorm re-estimates its statistics) does not
    # change what the others prepare from, whatever the order
    first = FineTuningClassifier(net2, regularizer=["stochnorm", "co_tuning"],
                                 **{**PARAMS, "max_epochs": 1}).fit(X, y)
    np.testing.assert_allclose(first.regularizer_.members["co_tuning"].soft_targets,
                               alone.regularizer_.soft_targets, atol=1e-6)
