"""The spotter's checkpoint monitor: detection rate at a false-alarm rate on the validation streams.

Window accuracy rewards the frequent easy windows; a spotter is judged by the keywords it finds
while firing at most about once an hour. Each epoch this runs the model's own streaming step over
the validation keyword stream and keyword-free stream (their cached frames) and logs the best
detection rate among the detector settings within the rate, as ``val/det_at_<rate>fa``.
"""

from __future__ import annotations

import lightning as L
import torch

from speechrnn.errors import SpeechRNNError
from speechrnn.streaming.runner import run_step
from speechrnn.streaming.tuning import detection_at, sweep


class StreamValidation(L.Callback):
    """Logs ``val/det_at_<false_alarms_per_hour>fa`` (``val/det_at_1fa`` by default) after each validation.

    Needs a data module with scored streams (:class:`~speechrnn.corpora.streams.StreamDataModule`).
    """

    def __init__(self, false_alarms_per_hour: float = 1.0) -> None:
        self.false_alarms_per_hour = false_alarms_per_hour
        self.name = f"val/det_at_{false_alarms_per_hour:g}fa"
        self.tapes = None  # (keyword frames, keyword timeline, keyword-free frames), read once

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        if self.tapes is None:
            if not hasattr(datamodule, "tape"):
                raise SpeechRNNError(f"StreamValidation scores streams, which {type(datamodule).__name__} does not "
                                     "write; use it with a stream data config (configs/data/fsdd_stream*.yaml)")
            (keywords, timeline), (free, _) = datamodule.tape("validation"), datamodule.tape("validation", True)
            self.tapes = keywords, [e for e in timeline["events"] if e["kind"] == "keyword"], free
        keywords, truth, free = self.tapes
        step = pl_module.streaming_step("the model in training")
        with torch.inference_mode():
            posteriors = [run_step(step, frames.to(pl_module.device),
                                   tuple(s.to(pl_module.device) for s in step.initial_state()))[0].cpu()
                          for frames in (keywords, free)]
        curve = sweep(posteriors[0], truth, posteriors[1], step.labels, datamodule.features)
        pl_module.log(self.name, detection_at(curve, self.false_alarms_per_hour))
