"""The toy model of Sec. 4.2 read on the audit's replay-crafted examples, by ``predict.predict_chunk``.

The audited model is a global-RNG model behind ``ReplayedDefence``, not one of the project's purifiers:
two small adapters give predict_chunk the purifier and replay source it expects. A reading that cannot
apply (output noise that is discrete or degenerate, e.g. draws that do not vary) never ends an audit: the
chunk keeps its attack results and a note "toy reading not applicable: ...".
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from empirical import predict
from empirical.replay import ReplayedDefence, RNGKeys


class _ReplayRows:
    """The replay keys of a chunk as predict_chunk's replay source: rows ``index`` of the chunk's replayed
    output (per-batch draws depend on the whole chunk, so the chunk is run whole)."""

    replay = True

    def __init__(self, keys: RNGKeys, index: torch.Tensor | None = None):
        self.keys, self.index = keys, index

    def subset(self, index: torch.Tensor) -> "_ReplayRows":
        return _ReplayRows(self.keys, torch.as_tensor(index))


class _ToyStage:
    """The audited purifier stage as predict_chunk's purifier: images under BPDA; else the logits, read as
    [classes, 1, 1] images (``torch.nn.Flatten`` classifies them). predict_chunk expects outputs shaped like
    its inputs, so for logits it is handed ``handles`` (row i filled with i, shaped like a logit image)
    and the stage looks the images up by them."""

    stochastic = True

    def __init__(self, purifier: ReplayedDefence, x_adv: torch.Tensor, replay: RNGKeys, logits: bool):
        self.purifier, self.x_adv, self.logits = purifier, x_adv, logits
        self.replayed = self._shape(self.purifier(x_adv, replay))
        n = x_adv.shape[0]
        self.handles = (torch.arange(n, dtype=torch.float32, device=x_adv.device).view(n, 1, 1, 1)
                        .expand(self.replayed.shape).clone() if self.logits else x_adv)

    def _shape(self, out: torch.Tensor) -> torch.Tensor:
        return out.view(*out.shape, 1, 1) if self.logits else out

    def __call__(self, x: torch.Tensor, noise: Any) -> torch.Tensor:
        if isinstance(noise, _ReplayRows):
            return self.replayed[noise.index.to(self.replayed.device)]
        images = self.x_adv[x[:, 0, 0, 0].round().long()] if self.logits else x
        return self._shape(self.purifier(images, noise))


def toy_reading(record: dict, purifier: ReplayedDefence, classifier: torch.nn.Module, logits: bool,
                x_adv: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, replay: RNGKeys,
                fresh_for: Callable[[str, torch.Tensor], Any], settings: predict.PredictSettings) -> None:
    """Add "toy" (predict_chunk's per-sample readings) to the chunk's ``record``, or "toy_note" when the
    reading does not apply. ``logits``: the whole model was attacked, so its logits are read as
    [classes, 1, 1] images classified by ``torch.nn.Flatten``; else ``classifier`` reads the purifier's images."""
    try:
        stage = _ToyStage(purifier, x_adv, replay, logits)
        record["toy"] = predict.predict_chunk(torch.nn.Flatten() if logits else classifier, stage, stage.handles, y,
                                              ids, _ReplayRows(replay), fresh_for, record["replay_replay"],
                                              record["clean_replay"], settings)
    except (ValueError, RuntimeError) as err:
        record["toy"] = []
        record["toy_note"] = f"toy reading not applicable: {err}"
