"""speechrnn installed from its wheel, not from this checkout, still finds its configs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_evaluate import labelled_folder, run  # noqa: F401 (the fitted tone run, shared)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (without dependencies) into its own folder.

    It is built from a copy of the files git sees (tracked, or new and not ignored): built in
    place, setuptools would reuse the checkout's ``build/`` folder and ship files deleted since.
    """
    scratch = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # a deleted file not yet committed is still listed
            (scratch / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, scratch / "src" / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", scratch / "dist", scratch / "src"],
                   check=True, cwd=scratch, capture_output=True)
    wheel = next((scratch / "dist").glob("speechrnn-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", scratch / "site", wheel],
                   check=True, capture_output=True)
    return scratch / "site"


def test_the_wheel_ships_every_config(installed):
    shipped = {p.relative_to(installed / "speechrnn").as_posix() for p in installed.glob("speechrnn/configs/*/*.yaml")}
    in_checkout = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("configs/*/*.yaml")}
    assert shipped == in_checkout and "configs/data/fsdd.yaml" in shipped


def test_evaluate_runs_from_outside_the_checkout_with_the_installed_package(installed, run, tmp_path):  # noqa: F811
    folder = labelled_folder(run, "*_1[01].wav", tmp_path / "clips")  # the tone corpus's test split
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {"PYTHONPATH": str(installed), "WANDB_MODE": "disabled"}

    def speechrnn(*args):
        return subprocess.run([sys.executable, "-m", "speechrnn.cli", *map(str, args)], cwd=elsewhere, env=env,
                              capture_output=True, text=True, check=False)

    where = subprocess.run([sys.executable, "-c", "import speechrnn; print(speechrnn.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed))  # the installed copy, not this checkout
    done = speechrnn("evaluate", run / "checkpoints/best.ckpt", "--dataset", "folder", "--data-root", folder,
                     "--cache-dir", tmp_path / "cache", "--json", tmp_path / "eval.json")
    assert done.returncode == 0, done.stderr
    trained = json.loads((run / "results.json").read_text())["test"]["accuracy"]
    assert json.loads((tmp_path / "eval.json").read_text())["test"]["accuracy"] == pytest.approx(trained)
    unknown = speechrnn("evaluate", run / "checkpoints/best.ckpt", "--dataset", "nope")
    assert unknown.returncode == 2 and "'fsdd'" in unknown.stderr and "'synth'" in unknown.stderr  # read from the package


def test_the_wheel_ships_the_page(installed):
    from speechrnn.streaming.web import PAGE_FILES

    assert sorted(p.name for p in (installed / "speechrnn/streaming/site").iterdir()) == sorted(PAGE_FILES)
