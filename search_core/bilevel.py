"""One E2RNAS step on a batch: the upper-level α update (eqs. 9, 1, 10), then θ (eq. 8).

Per batch (Algorithm 1; α before θ as in the authors' code and DARTS):

1. Lower level at (θ, α): g_tr = ∇θ L_tr and g_ood = ∇θ L_ood on their own batches. g_tr is
   built with its graph kept when exact Hessian-vector products are wanted.
2. Unrolled weights (eq. 9): θ' = θ − ξ (μ m + g_tr + λ θ), ξ the current weight learning rate,
   m SGD's momentum buffer, λ the weight decay, exactly the step SGD would take on L_tr.
3. FGSM on the validation batch at θ' (for eq. 4).
4. Upper objectives at θ': L_val, L_ood, L_adv give ∇α L_k(θ') and v_k = ∇θ' L_k(θ').
5. Hypergradients (eq. 9): G_k = ∇α L_k(θ') − ξ ∇²_{α,θ} L_tr(θ, α) v_k. The three
   Hessian-vector products are taken together: by DARTS's central differences
   [∇α L_tr(θ + εv) − ∇α L_tr(θ − εv)] / 2ε, ε = fd_epsilon / ‖v‖ (``hessian=
   "finite_difference"``, the default), the 2K shifted networks one after another
   (``fd_batch="loop"``: one network's activations alive at a time) or in one vmapped pass
   (``"vmap"``: 2K networks' activations at once). ``"auto"``, the default, vmaps the two
   networks of one vector (``mgda_on="direct"``) and loops over six, where holding six
   networks' activations costs more time than batching saves (bench/step_cost.py); or
   exactly by one batched double backward through g_tr's graph (``"exact"``).
6. G_nop, G_flops: gradients of eqs. (5), (6), which depend on α only.
7. γ = MGDA min-norm weights of the normalised G (eq. 1), or 1/n (``weighting="equal"``);
   α ← Adam step on Σ γ_k G_k (eq. 10).
8. θ ← SGD step on g_tr + g_ood (eq. 8), reusing step 1's gradients: they are taken at
   (θ_t, α_t), which is what eq. (8) asks for, so no pass is repeated.

``order="first"`` sets ξ = 0: no unrolled step and no Hessian-vector products. The step never
synchronises with the host: losses and weights are returned as device tensors.

The backbones of Table IV run the same step. α is the network's architecture, so PC-DARTS's
edge parameters β are updated by the same hypergradients (they enter L_tr, L_val, ... through
edge normalisation, and the costs through the β-weighted edges); P-DARTS's pruned ops sit at
weight 0 and receive no gradient. P-DARTS clips the update direction of α
(``arch_grad_clip``), and skip-connect dropout draws one mask for all 2K shifted networks of
the finite differences (the loop replays the random state), so that the differences see the
same network. Both methods first train θ alone for some epochs
(:meth:`BilevelStep.weight_step`, eq. 8 without an α step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F_nn
from torch.func import functional_call, grad, vmap

from search_core.config import SearchConfig
from search_core.cost import CostTables
from search_core.mgda import equal_weights, min_norm_weights, normalize_gradients
from search_core.model_search import SearchNetwork
from search_core.objectives import PixelBox, cost_loss, fgsm, kl_uniform

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Hypergradients:
    """Rows of ``grads`` are the objectives' gradients in α (config order), flattened: the
    hypergradients G_k, or with ``mgda_on="direct"`` the direct gradients ∇α L_k(θ'), whose
    second-order term :meth:`BilevelStep.step` adds once (``pending``)."""

    grads: torch.Tensor
    losses: torch.Tensor
    lower_grads: list[torch.Tensor]  # ∇θ (L_tr + L_ood) at (θ_t, α_t), reused by eq. (8)
    train_loss: torch.Tensor
    pending: _Pending | None = None


@dataclass
class _Pending:
    """What the second-order term of a direct step needs: ξ, the v_k of the data objectives,
    and L_tr's graph (exact) or its inputs (finite differences)."""

    xi: float
    vectors: list[tuple[torch.Tensor, ...]]
    g_tr: tuple[torch.Tensor, ...]
    lower: _Lower


@dataclass
class _Lower:
    """L_tr's inputs (the clean batch, its FGSM version, or both, their cross-entropies
    summed) and labels: the finite differences of eq. (9) differentiate the same loss."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor


@dataclass
class StepResult:
    """Device tensors of one step: the objectives (config order), their weights γ, and the
    norms ‖g_k‖ of the gradients eq. (1) was solved on (γ_k‖g_k‖ set the mix under l2)."""

    losses: torch.Tensor
    weights: torch.Tensor
    train_loss: torch.Tensor
    grad_norms: torch.Tensor


class BilevelStep:
    """Owns the two optimisers and performs E2RNAS steps on a :class:`SearchNetwork`."""

    def __init__(
        self,
        net: SearchNetwork,
        config: SearchConfig,
        costs: CostTables,
        in_box: PixelBox,
        generator: torch.Generator | None = None,
    ) -> None:
        self.net = net
        self.config = config
        self.costs = costs
        self.box = in_box
        self.generator = generator
        self.names = [name for name, _ in net.named_weights()]
        self.theta = net.weights()
        self.alphas = net.alphas()
        self.w_optim = torch.optim.SGD(
            self.theta,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.a_optim = torch.optim.Adam(
            self.alphas,
            lr=config.arch_lr,
            betas=(config.arch_beta1, config.arch_beta2),
            weight_decay=config.arch_weight_decay,
        )
        self.data_objectives = [o for o in config.objectives if o in ("val", "ood", "adv")]
        # Eq. (10) adds raw gradients, so the cost objectives' units weigh in: in M params and
        # M MACs, F̂'s gradient is 10-100x N̂'s and the FLOPs bound alone decides every
        # conflict. "start" divides each by its estimate at uniform α (a constant per search,
        # independent of the bounds), making both unit-free.
        self.cost_scales = (1.0, 1.0)
        if config.cost_normalization == "start":
            n0, f0 = self._cost_estimate(uniform=True)
            self.cost_scales = (1.0 / float(n0), 1.0 / float(f0))
        self.second_order = config.order == "second"

    # -- pieces ---------------------------------------------------------------------------
    def _cost_estimate(self, uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(N̂, F̂) of eqs. (5), (6) at the network's architecture (or a uniform one), over the
        supernet or the derived network."""
        derived = self.config.cost_estimate == "derived"
        return self.costs.expected(*self.net.cost_weights(uniform=uniform, derived=derived))

    def _at(self, params: list[torch.Tensor]) -> functional_call_model:
        return functional_call_model(self.net, dict(zip(self.names, params, strict=True)))

    def _lower_grads(
        self, train: Batch, ood_x: torch.Tensor | None, keep_graph: bool = False
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...] | None, torch.Tensor, _Lower]:
        cfg = self.config
        x, y = train
        inputs: tuple[torch.Tensor, ...] = (x,)
        if cfg.adv_train_in_lower:
            x_adv = fgsm(self.net, x, y, self.box, self.generator, cfg.fgsm_step_scale)
            both = cfg.adv_lower_form == "clean_and_adversarial"
            inputs = (x, x_adv) if both else (x_adv,)
        loss_tr = _cross_entropies(self.net, inputs, y)
        g_tr = torch.autograd.grad(loss_tr, self.theta, create_graph=keep_graph)
        g_ood = None
        if ood_x is not None:
            loss_ood = cfg.ood_loss_scale * kl_uniform(self.net(ood_x), cfg.kl_reduction)
            g_ood = torch.autograd.grad(loss_ood, self.theta)
        return g_tr, g_ood, loss_tr.detach(), _Lower(inputs, y)

    def _unrolled(self, g_tr: tuple[torch.Tensor, ...], xi: float) -> list[torch.Tensor]:
        momentum, decay = self.config.momentum, self.config.weight_decay
        out = []
        for p, g in zip(self.theta, g_tr, strict=True):
            step = g.detach() + decay * p.detach()
            buf = self.w_optim.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                step = step + momentum * buf
            out.append((p.detach() - xi * step).requires_grad_(True))
        return out

    def _upper(
        self, params: list[torch.Tensor], val: Batch, ood_x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, ...]], list[tuple[torch.Tensor, ...]]]:
        """Each data objective at θ': its value, ∇α and ∇θ'."""
        model = self._at(params)
        x, y = val
        losses, grads_a, grads_w = [], [], []
        wrt = [*self.alphas, *params] if self.second_order else list(self.alphas)
        for name in self.data_objectives:
            if name == "val":
                loss = F_nn.cross_entropy(model(x), y)
            elif name == "ood":
                loss = kl_uniform(model(ood_x), self.config.kl_reduction)
                if self.config.ood_upper_scale != 1.0:
                    loss = self.config.ood_upper_scale * loss
            else:
                x_adv = fgsm(model, x, y, self.box, self.generator, self.config.fgsm_step_scale)
                loss = F_nn.cross_entropy(model(x_adv), y)
            grads = torch.autograd.grad(loss, wrt)
            losses.append(loss.detach())
            grads_a.append(grads[: len(self.alphas)])
            grads_w.append(grads[len(self.alphas) :])
        return losses, grads_a, grads_w

    def _hvp_exact(
        self, g_tr: tuple[torch.Tensor, ...], vectors: list[tuple[torch.Tensor, ...]]
    ) -> list[torch.Tensor]:
        """∇α (g_tr · v_k) for every k at once: one batched double backward."""
        stacked = [torch.stack(parts) for parts in zip(*vectors, strict=True)]
        grads = torch.autograd.grad(
            g_tr, self.alphas, grad_outputs=stacked, is_grads_batched=True, allow_unused=True
        )
        k = len(vectors)
        full = [
            g if g is not None else a.new_zeros(k, *a.shape)
            for g, a in zip(grads, self.alphas, strict=True)
        ]
        return list(torch.cat([g.reshape(k, -1) for g in full], dim=1))

    def _hvp_finite_difference(
        self, lower: _Lower, vectors: list[tuple[torch.Tensor, ...]]
    ) -> list[torch.Tensor]:
        """DARTS's central differences for every v_k, of the lower level's own L_tr (on the
        inputs it was taken on): the 2K shifted networks in a loop, or in one vmapped call."""
        norms = torch.stack([flat_cat(list(v)).norm() for v in vectors])
        eps = self.config.fd_epsilon / norms.clamp_min(1e-12)
        batch = self.config.fd_batch
        if batch == "vmap" or (batch == "auto" and len(vectors) == 1):
            return self._central_differences_vmapped(lower, vectors, eps)
        return self._central_differences_looped(lower, vectors, eps)

    def _central_differences_looped(
        self, lower: _Lower, vectors: list[tuple[torch.Tensor, ...]], eps: torch.Tensor
    ) -> list[torch.Tensor]:
        """One shifted network at a time; each starts from the same random state, so that
        P-DARTS's dropout draws one mask for all of them (as vmap's ``randomness="same"``)."""
        device = self.alphas[0].device
        state = _random_state(device)
        out = []
        for i, v in enumerate(vectors):
            sides = []
            for sign in (1.0, -1.0):
                _set_random_state(device, state)
                shift = sign * eps[i]
                shifted = [p.detach() + shift * part for p, part in zip(self.theta, v, strict=True)]
                loss = _cross_entropies(self._at(shifted), lower.inputs, lower.labels)
                grads = torch.autograd.grad(loss, self.alphas, allow_unused=True)
                sides.append(
                    flat_cat(
                        [
                            g if g is not None else torch.zeros_like(a)
                            for g, a in zip(grads, self.alphas, strict=True)
                        ]
                    )
                )
            out.append((sides[0] - sides[1]) / (2.0 * eps[i]))
        return out

    def _central_differences_vmapped(
        self, lower: _Lower, vectors: list[tuple[torch.Tensor, ...]], eps: torch.Tensor
    ) -> list[torch.Tensor]:
        """All 2K shifted networks in one vmapped call."""
        k = len(vectors)
        signed = torch.cat([eps, -eps])  # (2K,)
        shifted = {}
        for i, (name, p) in enumerate(zip(self.names, self.theta, strict=True)):
            v = torch.stack([vec[i] for vec in vectors] * 2)  # (2K, *p.shape)
            scale = signed.view(-1, *([1] * p.dim()))
            shifted[name] = p.detach().unsqueeze(0) + scale * v
        arch_names = self.net.arch_names
        alphas = {name: a.detach() for name, a in zip(arch_names, self.alphas, strict=True)}
        net = self.net

        def train_loss(
            alpha: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]
        ) -> torch.Tensor:
            model = functional_call_model(net, {**weights, **alpha})
            return _cross_entropies(model, lower.inputs, lower.labels)

        # randomness="same": P-DARTS's dropout draws one mask for every shifted network.
        grads = vmap(grad(train_loss), in_dims=(None, 0), randomness="same")(alphas, shifted)
        flat = torch.cat([grads[name].reshape(2 * k, -1) for name in arch_names], dim=1)
        return list((flat[:k] - flat[k:]) / (2.0 * eps).unsqueeze(1))

    # -- the step -------------------------------------------------------------------------
    def hypergradients(self, train: Batch, val: Batch, ood_x: torch.Tensor) -> Hypergradients:
        """Steps 1-6: every objective's value and (hyper)gradient with respect to α."""
        cfg = self.config
        xi = self.w_optim.param_groups[0]["lr"] if self.second_order else 0.0
        exact = self.second_order and cfg.hessian == "exact"
        g_tr, g_ood, train_loss, lower = self._lower_grads(
            train, ood_x if cfg.ood_in_lower else None, keep_graph=exact
        )

        params: list[torch.Tensor] = (
            self._unrolled(g_tr, xi) if self.second_order else list(self.theta)
        )
        losses, grads_a, grads_w = self._upper(params, val, ood_x)
        hyper = [flat_cat(list(g)) for g in grads_a]
        pending = None
        if self.second_order and hyper and cfg.mgda_on == "direct":
            pending = _Pending(xi, grads_w, g_tr, lower)
        elif self.second_order and hyper:
            hvps = self._hvps(g_tr, lower, grads_w)
            hyper = [h - xi * hv for h, hv in zip(hyper, hvps, strict=True)]

        n_hat, f_hat = self._cost_estimate()
        for name, estimate, bound, scale in (
            ("nop", n_hat, cfg.L, self.cost_scales[0]),
            ("flops", f_hat, cfg.F, self.cost_scales[1]),
        ):
            if name in cfg.objectives:
                loss = scale * cost_loss(estimate, bound)
                if cfg.cost_scale != 1.0:
                    loss = cfg.cost_scale * loss
                grad_a = torch.autograd.grad(loss, self.alphas, retain_graph=True)
                hyper.append(flat_cat(list(grad_a)))
                losses.append(loss.detach())
        g_lower = [g.detach() for g in g_tr]
        if g_ood is not None:
            g_lower = [g + o for g, o in zip(g_lower, g_ood, strict=True)]
        return Hypergradients(
            grads=torch.stack(hyper),
            losses=torch.stack(losses),
            lower_grads=g_lower,
            train_loss=train_loss,
            pending=pending,
        )

    def _hvps(
        self, g_tr: tuple[torch.Tensor, ...], lower: _Lower, vectors: list[tuple[torch.Tensor, ...]]
    ) -> list[torch.Tensor]:
        """∇²_{α,θ} L_tr · v for each vector, exactly or by central differences."""
        if self.config.hessian == "exact":
            return self._hvp_exact(g_tr, vectors)
        return self._hvp_finite_difference(lower, vectors)

    def step(self, train: Batch, val: Batch, ood_x: torch.Tensor) -> StepResult:
        """One batch of Algorithm 1: α by eqs. (9), (1), (10), then θ by eq. (8)."""
        cfg = self.config
        h = self.hypergradients(train, val, ood_x)
        if cfg.weighting == "mgda" and len(h.grads) > 1:
            normed = normalize_gradients(h.grads, h.losses, cfg.mgda_normalization)
            gamma = min_norm_weights(normed, cfg.fw_max_iter, cfg.fw_tol)
        else:
            gamma = equal_weights(len(h.grads), h.grads.device, h.grads.dtype)
        combined = gamma @ h.grads  # eq. (10): ∇α (U Γᵀ)
        if h.pending is not None:  # mgda_on="direct": the second-order term of Σγ_k G_k, once
            p = h.pending
            data = gamma[: len(p.vectors)]
            v = tuple(
                sum(w * part for w, part in zip(data, parts, strict=True))
                for parts in zip(*p.vectors, strict=True)
            )
            (hvp,) = self._hvps(p.g_tr, p.lower, [v])
            combined = combined - p.xi * hvp

        self.a_optim.zero_grad(set_to_none=True)
        offset = 0
        for a in self.alphas:
            a.grad = combined[offset : offset + a.numel()].view_as(a).clone()
            offset += a.numel()
        if cfg.arch_grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.alphas, cfg.arch_grad_clip)
        self.a_optim.step()
        self._weight_update(h.lower_grads)
        return StepResult(
            losses=h.losses,
            weights=gamma.detach(),
            train_loss=h.train_loss,
            grad_norms=torch.linalg.vector_norm(h.grads.detach(), dim=1),
        )

    def weight_step(self, train: Batch, ood_x: torch.Tensor) -> torch.Tensor:
        """A warm-up batch: θ by eq. (8) alone, α untouched; returns L_tr (a device tensor)."""
        g_tr, g_ood, train_loss, _ = self._lower_grads(
            train, ood_x if self.config.ood_in_lower else None
        )
        lower = [g.detach() for g in g_tr]
        if g_ood is not None:
            lower = [g + o for g, o in zip(lower, g_ood, strict=True)]
        self._weight_update(lower)
        return train_loss

    def _weight_update(self, lower_grads: list[torch.Tensor]) -> None:
        """SGD on θ with the given gradient of L_tr + L_ood (eq. 8), clipped as DARTS does."""
        self.w_optim.zero_grad(set_to_none=True)
        for p, g in zip(self.theta, lower_grads, strict=True):
            p.grad = g
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.theta, self.config.grad_clip)
        self.w_optim.step()


class functional_call_model:  # noqa: N801 - a callable, named like the function it wraps
    """The network as a function of x at the given weights (α stays the module's own)."""

    def __init__(self, net: torch.nn.Module, params: dict[str, torch.Tensor]) -> None:
        self.net = net
        self.params = params

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.net, self.params, (x,), strict=False)
        assert isinstance(out, torch.Tensor)
        return out


def _cross_entropies(
    model: torch.nn.Module | functional_call_model,
    inputs: tuple[torch.Tensor, ...],
    y: torch.Tensor,
) -> torch.Tensor:
    """L_tr: the cross-entropy of each input batch, summed (one batch: its cross-entropy)."""
    loss = F_nn.cross_entropy(model(inputs[0]), y)
    for x in inputs[1:]:
        loss = loss + F_nn.cross_entropy(model(x), y)
    return loss


def _random_state(device: torch.device) -> torch.Tensor:
    """The random state that dropout on ``device`` draws from."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_random_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def flat_cat(tensors: list[torch.Tensor | None] | list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors if t is not None])
