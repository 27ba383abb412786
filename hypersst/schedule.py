"""The scheduler that drives every periodic low-rank method in a model."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from hypersst.config import SSTConfig
from hypersst.spectral.functional import sample_active_indices
from hypersst.spectral.layer import SSTLinear

__all__ = ["SSTScheduler"]


def _relora_class():
    # Imported lazily because hypersst.lowrank imports the spectral layer.
    from hypersst.lowrank.lora import ReLoRALinear

    return ReLoRALinear


def _reset_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, index=None, *, reset_step: bool = False) -> None:
    from hypersst.lowrank.optim_state import reset_optimizer_state

    reset_optimizer_state(optimizer, param, index=index, dim=0, reset_step=reset_step)


class SSTScheduler:
    """Resample, swap, re-factorize and warm up the SST and ReLoRA* layers of a model.

    Call :meth:`step` once after every ``optimizer.step()``. The scheduler then

    * clamps the singular values of every :class:`~hypersst.SSTLinear` at zero and renormalizes its
      active singular vectors;
    * at the end of each iteration (``config.steps_per_iteration`` steps): re-factorizes by SVD every SST
      layer whose round ends (resetting that layer's optimizer state), draws a new active set for every
      SST layer, swaps it in and resets the optimizer state of the swapped vectors only; and merges and
      resets every ReLoRA* layer together with its optimizer state. With ``config.state_reset="restart"``
      the step counters restart too, and a resampling restarts the state of every active vector;
    * scales the learning rate of each parameter group (with ``config.warmup_scope="reset"``, of each
      group that contains a parameter whose state restarted when the iteration began) by the warm-up factor
      ``min(1, (t + 1) / warmup_steps)``, where ``t`` counts the steps since the iteration began.

    All work due at an iteration boundary happens inside the :meth:`step` call that ends the iteration,
    so the state of swapped or reset parameters is already zero when it returns. The first active set is
    drawn when the scheduler is built.

    The scheduler owns the learning rate of every group: it stores the learning rates it finds at
    construction as base rates and writes ``base * factor`` after each step. To combine SST with another
    learning-rate schedule, build the config with ``warmup_steps=0``.

    Args:
        model: a module that contains SST or ReLoRA* layers (see :func:`hypersst.apply_lowrank`), all of
            rank ``config.rank``.
        optimizer: the optimizer that trains ``model``; it must hold every trainable parameter of those
            layers.
        config: schedule and sampling options.

    Raises:
        ValueError: if the model has no SST or ReLoRA* layer, a layer's rank differs from ``config.rank``,
            or the optimizer lacks one of their parameters.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: SSTConfig) -> None:
        if not isinstance(config, SSTConfig):
            raise TypeError(f"SSTScheduler: config must be an SSTConfig, got {type(config).__name__}")
        self.optimizer = optimizer
        self.config = config
        self._restarts_state = config.state_reset == "restart"
        relora_cls = _relora_class()
        self.sst_layers: List[Tuple[str, SSTLinear]] = []
        self.relora_layers: List[Tuple[str, nn.Module]] = []
        for name, module in model.named_modules():
            if isinstance(module, SSTLinear):
                self.sst_layers.append((name or "<root>", module))
            elif isinstance(module, relora_cls):
                self.relora_layers.append((name or "<root>", module))
        if not self.sst_layers and not self.relora_layers:
            raise ValueError(
                "SSTScheduler: the model contains no SSTLinear or ReLoRALinear layer; convert it first with "
                "hypersst.apply_lowrank(model, 'sst', rank) or apply_lowrank(model, 'relora', rank)."
            )
        self._check_ranks()
        self._check_optimizer_holds_parameters()
        self._check_sequential_rounds()

        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(config.seed)
        self.step_count = 0
        self.iteration = 0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._warmed: set[int] = set()
        self._warmed_for: Optional[int] = None
        for name, layer in self.sst_layers:
            self._resample(name, layer)
        self._apply_lr_factor()

    # ------------------------------------------------------------------ checks
    def _check_ranks(self) -> None:
        for name, module in self.sst_layers + self.relora_layers:
            if module.rank != self.config.rank:
                raise ValueError(
                    f"SSTScheduler: layer {name!r} has rank {module.rank} but the config has rank={self.config.rank}; "
                    "convert the model and build the config with the same rank"
                )

    def _check_sequential_rounds(self) -> None:
        if self.config.sampling != "sequential" or self.config.iterations_per_round is None:
            return
        for name, layer in self.sst_layers:
            needed = math.ceil(layer.num_triplets / layer.rank)
            if self.config.iterations_per_round < needed:
                raise ValueError(
                    f"SSTScheduler: with sampling='sequential', layer {name!r} needs rounds of at least "
                    f"ceil({layer.num_triplets} / {layer.rank}) = {needed} iterations to train each of its triplets, "
                    f"but iterations_per_round={self.config.iterations_per_round}; raise it or pass None for "
                    "ceil(k / r) per layer"
                )

    def _check_optimizer_holds_parameters(self) -> None:
        held = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        for name, module in self.sst_layers + self.relora_layers:
            for param_name, param in module.named_parameters(recurse=False):
                if param.requires_grad and id(param) not in held:
                    raise ValueError(
                        f"SSTScheduler: the optimizer does not hold parameter '{param_name}' of layer '{name}'. "
                        "Build the optimizer after converting the model, from model.parameters()."
                    )

    # ------------------------------------------------------------------ schedule arithmetic
    def iterations_per_round(self, layer: SSTLinear) -> int:
        """Return the number of iterations between two re-SVDs of ``layer``."""
        if self.config.iterations_per_round is not None:
            return self.config.iterations_per_round
        return math.ceil(layer.num_triplets / layer.rank)

    def warmup_factor(self) -> float:
        """Return the learning-rate factor for the next optimizer step."""
        warmup = self.config.warmup_steps
        if warmup == 0:
            return 1.0
        position = self.step_count % self.config.steps_per_iteration
        return min(1.0, (position + 1) / warmup)

    def warmed_groups(self) -> List[int]:
        """Return the indices of the parameter groups that the warm-up scales in the current iteration."""
        groups = self.optimizer.param_groups
        if self.config.warmup_scope == "all":
            return list(range(len(groups)))
        restarted = []
        for _, layer in self.relora_layers:
            restarted.extend((layer.lora_A, layer.lora_B))
        for _, layer in self.sst_layers:
            restarted.extend(layer.trainable_vector_parameters())
            if self.iteration > 0 and self.iteration % self.iterations_per_round(layer) == 0:
                restarted.append(layer.S)
        restarted_ids = {id(param) for param in restarted}
        return [index for index, group in enumerate(groups) if any(id(param) in restarted_ids for param in group["params"])]

    def _apply_lr_factor(self) -> None:
        factor = self.warmup_factor()
        if self._warmed_for != self.iteration:
            self._warmed = set(self.warmed_groups())
            self._warmed_for = self.iteration
        for index, (group, base) in enumerate(zip(self.optimizer.param_groups, self.base_lrs)):
            group["lr"] = base * factor if index in self._warmed else base

    # ------------------------------------------------------------------ boundary work
    def _resample(self, name: str, layer: SSTLinear) -> None:
        indices = sample_active_indices(
            layer.S,
            layer.rank,
            sampling=self.config.sampling,
            generator=self.generator,
            position=self.iteration % self.iterations_per_round(layer),
            name=f"layer {name!r}",
        )
        changed = layer.swap_(indices, name=f"layer {name!r}")
        if self._restarts_state:
            for param in layer.trainable_vector_parameters():
                _reset_state(self.optimizer, param, reset_step=True)
        elif changed.numel():
            for param in layer.trainable_vector_parameters():
                _reset_state(self.optimizer, param, index=changed)

    def _resvd(self, name: str, layer: SSTLinear) -> None:
        layer.resvd_(name=f"layer {name!r}")
        for param in (layer.S, *layer.trainable_vector_parameters()):
            _reset_state(self.optimizer, param, reset_step=self._restarts_state)

    def _end_iteration(self) -> None:
        self.iteration += 1
        for name, layer in self.relora_layers:
            layer.merge_and_reset_(self.optimizer, generator=self.generator, reset_step=self._restarts_state)
        for name, layer in self.sst_layers:
            if self.iteration % self.iterations_per_round(layer) == 0:
                self._resvd(name, layer)
            self._resample(name, layer)

    def step(self) -> None:
        """Advance the schedule by one optimizer step."""
        for _, layer in self.sst_layers:
            layer.post_step_()
        self.step_count += 1
        if self.step_count % self.config.steps_per_iteration == 0:
            self._end_iteration()
        self._apply_lr_factor()

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> Dict[str, Any]:
        """Return the scheduler state; with the model's and the optimizer's it resumes a run exactly."""
        return {
            "step_count": self.step_count,
            "iteration": self.iteration,
            "base_lrs": list(self.base_lrs),
            "generator_state": self.generator.get_state(),
            "config": self.config.to_dict(),
        }

    def check_state_dict(self, state: Dict[str, Any]) -> None:
        """Check that :meth:`load_state_dict` can restore ``state``, without changing anything.

        Raises:
            ValueError: if the saved configuration differs from this scheduler's, or the number of saved
                learning rates differs from the optimizer's parameter groups.
        """
        # Checkpoints written before ``state_reset`` and ``warmup_scope`` existed used "moments" and "all".
        saved = {"state_reset": "moments", "warmup_scope": "all", **state["config"]}
        current = self.config.to_dict()
        if saved != current:
            differences = ", ".join(
                f"{key}={saved.get(key)!r} there, {current.get(key)!r} here"
                for key in sorted(set(saved) | set(current))
                if saved.get(key) != current.get(key)
            )
            raise ValueError(
                f"SSTScheduler: the checkpoint was written with another config ({differences}); build the "
                f"scheduler with the saved SSTConfig(**config), which is {saved}."
            )
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"SSTScheduler: the checkpoint has {len(state['base_lrs'])} learning rates but the optimizer "
                f"has {len(self.optimizer.param_groups)} parameter groups"
            )

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Raises:
            ValueError: if :meth:`check_state_dict` rejects ``state``.
        """
        self.check_state_dict(state)
        self.step_count = int(state["step_count"])
        self.iteration = int(state["iteration"])
        self.base_lrs = list(state["base_lrs"])
        self.generator.set_state(state["generator_state"])
        self._warmed_for = None
        self._apply_lr_factor()
