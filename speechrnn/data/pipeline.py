"""The data pipeline of a run, as plain values a checkpoint carries and a tool rebuilds.

Every data module describes itself (``SpeechDataModule.pipeline``): its class and constructor
arguments, a wrapped module (the delayed task's ``inner``) described the same way inside them,
the feature settings its frames were computed with, and the padding its corpus gives short clips.
Training writes that description into each checkpoint (``SpeechClassifier.on_save_checkpoint``); ``evaluate``,
``predict``, ``gradients`` and the benchmarks rebuild the exact pipeline from it alone, with no
default filled in. Normalisation is the model's: its statistics and mode are in the model's own
state and hyper-parameters, in the same checkpoint.

Only classes of this package are imported by name, so reading a description never runs new code.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError

if TYPE_CHECKING:
    from speechrnn.data.datamodule import SpeechDataModule

LOCATION_ARGS = ("data_root", "cache_dir")  # where data lies: the corpus module's, not a wrapper's


@dataclass(frozen=True)
class DataPipeline:
    """What turns audio into a model's input, and the data module that did it in training."""

    data: dict  # {"class_path": ..., "init_args": {...}}; a wrapped module is described alike, nested
    features: FeatureSettings
    pad_to_s: float | None  # recordings shorter than this are zero-padded to it (Speech Commands: 1 s)

    def to_dict(self) -> dict:
        return {"data": self.data, "features": asdict(self.features), "pad_to_s": self.pad_to_s}

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> DataPipeline:
        """Read back :meth:`to_dict`; ``source`` names where it came from in the error."""
        try:
            return cls(data=_checked_description(raw["data"]), features=FeatureSettings(**raw["features"]),
                       pad_to_s=raw["pad_to_s"])
        except (KeyError, TypeError, ValueError) as err:
            raise SpeechRNNError(f"{source} has a malformed data-pipeline description ({err!r}); "
                                 "retrain it with this speechrnn") from err

    @property
    def class_path(self) -> str:
        return self.data["class_path"]

    def build(self, **overrides) -> SpeechDataModule:
        """The data module again; ``overrides`` (e.g. ``data_root``, ``batch_size``) replace arguments.

        ``data_root`` and ``cache_dir`` go to the module that reads the corpus (the innermost);
        any other override goes to the outermost module that takes it.
        """
        return build_data_module(self.data, {k: v for k, v in overrides.items() if v is not None})


def build_data_module(description: dict, overrides: dict) -> SpeechDataModule:
    cls = data_module_class(description["class_path"], "the data-pipeline description")
    init_args = dict(description["init_args"])
    nested = [name for name, value in init_args.items() if _is_description(value)]
    for name in nested:
        location = {k: v for k, v in overrides.items() if k in LOCATION_ARGS}
        init_args[name] = build_data_module(init_args[name], location)
    own = {k: v for k, v in overrides.items() if not (nested and k in LOCATION_ARGS) and accepts(cls, k)}
    return cls(**(init_args | own))


def describe(datamodule: SpeechDataModule, arguments: dict) -> dict:
    """``{"class_path", "init_args"}`` of ``datamodule``; wrapped data modules are described too."""
    from speechrnn.data.datamodule import SpeechDataModule

    cls = type(datamodule)
    init_args = {}
    for name, value in arguments.items():
        if name.startswith("_") or not accepts(cls, name):
            continue  # Lightning's own keys, and base-class arguments this class fixes itself
        init_args[name] = value.pipeline.data if isinstance(value, SpeechDataModule) else value
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def accepts(cls: type, name: str) -> bool:
    """Whether ``cls(name=...)`` is a valid call: a named parameter, or ``**kwargs`` to the base."""
    from speechrnn.data.datamodule import SpeechDataModule

    parameters = inspect.signature(cls.__init__).parameters
    if name in parameters:
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()) and cls is not SpeechDataModule:
        return accepts(cls.__mro__[1], name)
    return False


def data_module_class(class_path: str, source: str) -> type[SpeechDataModule]:
    """The data module class ``class_path`` names.

    Only modules of this package are imported; any other class must already be imported (as
    Lightning does for the classes a checkpoint names), so reading a file never runs new code.
    """
    from speechrnn.data.datamodule import SpeechDataModule

    module_name, _, name = class_path.rpartition(".")
    if module_name.split(".")[0] == "speechrnn":
        try:
            importlib.import_module(module_name)
        except ImportError as err:
            raise SpeechRNNError(f"{source} names {class_path}, which this speechrnn lacks: {err}") from err
    found = getattr(sys.modules.get(module_name), name, None)
    if not (isinstance(found, type) and issubclass(found, SpeechDataModule)):
        raise SpeechRNNError(
            f"{source} names the data module {class_path}, which is not part of speechrnn; "
            "pass --dataset with a dataset name (or `folder` and --data-root)"
        )
    return found


def _is_description(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"class_path", "init_args"}


def _checked_description(value: Any) -> dict:
    if not (_is_description(value) and isinstance(value["class_path"], str) and isinstance(value["init_args"], dict)):
        raise ValueError(f"expected {{'class_path', 'init_args'}}, got {value!r:.200}")
    return value
