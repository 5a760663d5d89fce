"""partition / param_groups / decay_groups / MultiOptimizer on a Transformer-like model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import descentlab.optim as dl
from descentlab.optim.grouping import (
    NORM_LAYERS,
    MultiOptimizer,
    decay_groups,
    everything,
    module_type,
    name,
    ndim,
    param_groups,
    partition,
)


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, num_heads=2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 11, width: int = 8, depth: int = 2, context: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied, as GPT-2

    def forward(self, tokens):
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


NO_DECAY = ndim(0, 1) | module_type(*NORM_LAYERS, nn.Embedding)


def test_every_layernorm_weight_and_bias_goes_to_no_decay():
    torch.manual_seed(0)
    model = TinyTransformer()
    groups = partition(model, {"decay": ~NO_DECAY, "no_decay": NO_DECAY})
    names = {label: [n for n, _ in params] for label, params in groups.items()}
    layer_norms = [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    assert len(layer_norms) == 5
    for ln in layer_norms:
        assert f"{ln}.weight" in names["no_decay"] and f"{ln}.bias" in names["no_decay"]
    assert "embed.weight" in names["no_decay"] and "head.weight" not in sum(names.values(), [])  # tied: once
    assert "blocks.0.attn.in_proj_weight" in names["decay"]  # owned by MultiheadAttention itself
    assert "blocks.1.mlp.0.bias" in names["no_decay"] and "blocks.1.mlp.2.weight" in names["decay"]
    assert "position" in names["decay"]  # a 2-D parameter of the model itself
    every = [id(p) for params in groups.values() for _, p in params]
    assert sorted(every) == sorted(id(p) for p in model.parameters())  # each exactly once


def test_a_parameter_selected_twice_or_never_is_refused_by_name():
    model = TinyTransformer()
    with pytest.raises(ValueError, match=r"several rules: .*ln_f\.weight by \['norm', 'vectors'\]"):
        partition(model, {"norm": module_type(nn.LayerNorm), "vectors": ndim(1), "rest": ndim(2)})
    with pytest.raises(ValueError, match=r"no rule: .*blocks\.0\.attn\.in_proj_weight \(MultiheadAttention"):
        partition(model, {"linear": module_type(nn.Linear, nn.Embedding), "vectors": ndim(1),
                          "position": name("position")})
    with pytest.raises(ValueError, match="unknown label"):
        param_groups(partition(model, {"all": everything()}), {"al": {"lr": 0.1}})
    for bad in (lambda: ndim(-1), lambda: name(), lambda: module_type(int), lambda: partition(model, {})):
        with pytest.raises(ValueError):
            bad()


def test_frozen_parameters_are_left_out():
    model = TinyTransformer()
    model.embed.weight.requires_grad_(False)
    groups = partition(model, {"all": everything()})
    assert "embed.weight" not in [n for n, _ in groups["all"]]
    every = partition(model, {"all": everything()}, trainable_only=False)["all"]
    assert len(every) == len(list(model.parameters()))


def _train_both(model_t, opts_t, model_d, opt_d, steps=20, schedulers=()):
    """Gradients at the torch model, copied to the descentlab one (as in the other optimizer tests)."""
    gen = torch.Generator().manual_seed(3)
    params_d = dict(model_d.named_parameters())
    for _ in range(steps):
        tokens = torch.randint(0, 11, (4, 6), generator=gen)
        model_t.zero_grad()
        nn.functional.cross_entropy(model_t(tokens).reshape(-1, 11), tokens.reshape(-1)).backward()
        for n, p in model_t.named_parameters():
            params_d[n].grad = p.grad.clone()
        for opt in (*opts_t, opt_d):
            opt.step()
        for s in schedulers:
            s.step()


def test_decay_groups_train_as_torch_adamw_with_hand_made_groups():
    torch.manual_seed(0)
    model_t = TinyTransformer().double()
    model_d = copy.deepcopy(model_t)
    decay = [p for n, p in model_t.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model_t.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups_t = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    opt_t = torch.optim.AdamW(groups_t, lr=0.01)
    opt_d = dl.AdamW(decay_groups(model_d, weight_decay=0.1), lr=0.01)
    assert [g["param_names"][:2] for g in opt_d.param_groups] == [
        ["position", "blocks.0.attn.in_proj_weight"], ["embed.weight", "blocks.0.ln1.weight"]]
    _train_both(model_t, [opt_t], model_d, opt_d)
    for a, b in zip(model_d.parameters(), model_t.parameters()):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_multi_optimizer_is_muon_plus_adamw():
    torch.manual_seed(0)
    model_t = TinyTransformer().double()
    model_d = copy.deepcopy(model_t)
    hidden = ndim(2) & ~module_type(nn.Embedding) & ~name("position")
    labelled = partition(model_d, {"muon": hidden, "adamw": ~hidden})
    multi = MultiOptimizer({"muon": dl.Muon(labelled["muon"], lr=0.02),
                            "adamw": dl.AdamW(labelled["adamw"], lr=0.003, weight_decay=0.01)})
    ids = {id(p) for _, p in labelled["muon"]}
    params_t = dict(model_t.named_parameters())
    muon_t = torch.optim.Muon([params_t[n] for n, _ in labelled["muon"]], lr=0.02)
    adamw_t = torch.optim.AdamW([params_t[n] for n, _ in labelled["adamw"]], lr=0.003, weight_decay=0.01)
    assert len(multi.param_groups) == 2 and multi.param_groups[0] is multi.optimizers["muon"].param_groups[0]
    sched = torch.optim.lr_scheduler.StepLR(multi, step_size=5, gamma=0.5)  # schedules every child
    sched_t = [torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5) for o in (muon_t, adamw_t)]
    _train_both(model_t, [muon_t, adamw_t], model_d, multi, steps=12, schedulers=[sched, *sched_t])
    assert multi.optimizers["muon"].param_groups[0]["lr"] == 0.02 * 0.25
    for (n, a), b in zip(model_d.named_parameters(), model_t.parameters()):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14), n
    assert any(id(p) in ids for p in model_d.parameters())
    saved = copy.deepcopy(multi.state_dict())
    assert sorted(saved["optimizers"]) == ["adamw", "muon"]
    multi.load_state_dict(saved)
    with pytest.raises(TypeError, match="add the group to one of its optimizers"):
        multi.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})
    with pytest.raises(ValueError, match="in both"):
        MultiOptimizer({"a": dl.SGD(model_d.parameters()), "b": dl.Adam(model_d.parameters())})
