"""The data pipeline of a run, as plain values a checkpoint carries, and the one way to build a data
module: from such a description, or from a config file.

Every data module describes itself (``SpeechDataModule.description``): its class and constructor
arguments, a wrapped module (the delayed task's ``inner``) described the same way inside them.
Its ``state_dict`` adds the feature settings its frames were computed with and the padding its
corpus gives short clips; Lightning writes that into every checkpoint, and ``evaluate``,
``predict``, ``gradients`` and the benchmarks rebuild the exact pipeline from it alone, with no
default filled in. Normalisation is the model's: its statistics and mode are in the model's own
state and hyper-parameters, in the same checkpoint.

Only classes of this package are imported by name, so reading a description never runs new code.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from speechrnn.data.datamodule import SpeechDataModule, accepts
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError

CORPUS_ARGS = ("data_root", "cache_dir")  # where data lies: the corpus module's, not a wrapper's


@dataclass(frozen=True)
class DataPipeline:
    """What turns audio into a model's input, and the data module that did it in training."""

    data: dict  # {"class_path": ..., "init_args": {...}}; a wrapped module is described alike, nested
    features: FeatureSettings
    pad_to_s: float | None  # recordings shorter than this are zero-padded to it (Speech Commands: 1 s)

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> DataPipeline:
        """Read back what ``SpeechDataModule.state_dict`` wrote; ``source`` names where it came from in the error."""
        try:
            return cls(data=_checked_description(raw["data"]), features=FeatureSettings(**raw["features"]),
                       pad_to_s=raw["pad_to_s"])
        except (KeyError, TypeError, ValueError) as err:
            raise SpeechRNNError(f"{source} has a malformed data-pipeline description ({err!r}); "
                                 "retrain it with this speechrnn") from err


def build_data_module(source: dict | str | Path | list[str | Path], **overrides) -> SpeechDataModule:
    """The data module ``source`` describes: a ``{"class_path", "init_args"}`` dict (a checkpoint's
    description, a config's ``data`` section), a YAML config file, or a list of them stacked as
    ``--config`` stacks them.

    ``overrides`` (e.g. ``data_root``, ``batch_size``) replace arguments; None leaves one as it is.
    ``data_root`` and ``cache_dir`` go to the modules that read a corpus (the innermost); any other
    override goes to the outermost module that takes it.
    """
    if isinstance(source, (str, Path)):
        source = [source]
    description = source if isinstance(source, dict) else data_config(*map(Path, source))
    return _build(description, {k: v for k, v in overrides.items() if v is not None})


def data_config(*paths: Path) -> dict:
    """The ``data`` section of YAML configs stacked in order, in full ``{"class_path", "init_args"}`` form.

    As with ``--config``, a later file's ``init_args`` keys win; a later ``class_path`` naming
    another class starts its arguments afresh.
    """
    merged: dict = {}
    for path in paths:
        if not path.is_file():
            raise SpeechRNNError(f"data config {path} not found; see configs/data/")
        data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        if data.get("class_path", merged.get("class_path")) != merged.get("class_path"):
            merged = {"class_path": data["class_path"]}
        merged.setdefault("init_args", {}).update(data.get("init_args") or {})
    if "class_path" not in merged:
        raise SpeechRNNError(f"{', '.join(map(str, paths))}: no data.class_path; a data config names its data "
                             "module (configs/data/)")
    return _full_form(merged)


def _full_form(value: Any) -> Any:
    """A config's short forms (a ``class_path`` without ``init_args``) written out, nested ones too."""
    if isinstance(value, dict) and "class_path" in value and set(value) <= {"class_path", "init_args"}:
        init_args = value.get("init_args") or {}
        return {"class_path": value["class_path"], "init_args": {k: _full_form(v) for k, v in init_args.items()}}
    return value


def _build(description: dict, overrides: dict) -> SpeechDataModule:
    cls = data_module_class(description["class_path"], "the data-pipeline description")
    init_args = dict(description["init_args"])
    nested = [name for name, value in init_args.items() if _is_description(value)]
    for name in nested:
        init_args[name] = _build(init_args[name], {k: v for k, v in overrides.items() if k in CORPUS_ARGS})
    own = {k: v for k, v in overrides.items() if not (nested and k in CORPUS_ARGS) and accepts(cls, k)}
    return cls(**(init_args | own))


def data_module_class(class_path: str, source: str) -> type[SpeechDataModule]:
    """The data module class ``class_path`` names.

    Only modules of this package are imported; any other class must already be imported (as
    Lightning does for the classes a checkpoint names), so reading a file never runs new code.
    """
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
