"""The first minutes: help and Hydra-level config errors never import torch; the digits need no scikit-learn."""
from __future__ import annotations

import subprocess
import sys

import pytest

from snntrain.training.schema import GROUPS

WRAP = """
import sys
sys.argv = ["snntrain", *{args!r}]
from snntrain.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("EXIT", code, "TORCH", "torch" in sys.modules, file=sys.stderr)
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAP.format(args=list(args))], capture_output=True, text=True,
                          timeout=300)


def test_help_lists_every_group_without_importing_torch():
    out = _run("--help")
    assert "TORCH False" in out.stderr and "EXIT 0" in out.stderr
    for group in (*GROUPS, "experiment", "hparams_search"):
        assert f"\n  {group} " in out.stdout, group
    assert "snntrain-list" in out.stdout


@pytest.mark.parametrize("args, said", [(("model=nosuch",), "nosuch"), (("nosuchkey=1",), "nosuchkey")])
def test_hydra_level_config_errors_come_without_torch(args, said):
    out = _run(*args)
    assert "TORCH False" in out.stderr and "EXIT 2" in out.stderr and said in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, said", [(("T=0",), "T: expected an integer >= 1"),
                                        (("trainer.progress=maybe",), "trainer.progress:"),
                                        (("+foo=1",), "foo"), (("device=gpu",), "device: must be")])
def test_schema_errors_come_without_torch(args, said):
    """Mistakes that need no registered component are refused before torch is imported (exit 2, one line)."""
    out = _run(*args)
    assert "TORCH False" in out.stderr and "EXIT 2" in out.stderr, out.stderr
    assert f"snntrain: error: {said}" in out.stderr and "Traceback" not in out.stderr


def test_import_snntrain_is_lazy():
    code = "import sys, snntrain; a = 'torch' in sys.modules; snntrain.available('norm'); print(a, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True"]


def test_bundled_digits_equal_scikit_learns():
    sklearn = pytest.importorskip("sklearn.datasets")
    import torch

    from snntrain.data.digits import read_rows

    rows = read_rows()
    ref = sklearn.load_digits()
    assert torch.equal(torch.tensor([r[:64] for r in rows]).view(-1, 8, 8), torch.tensor(ref.images, dtype=torch.float32))
    assert [int(r[64]) for r in rows] == ref.target.tolist()


def test_help_lists_the_same_options_as_hydra():
    """``--help`` lists options from the config folders; they must be exactly what Hydra would compose."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from snntrain.cli import group_options, help_text

    with initialize_config_module(config_module="snntrain.configs", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        hydra_groups = {g: sorted(loader.get_group_options(g)) for g in loader.list_groups("") if g != "hydra"}
    assert group_options() == hydra_groups
    text = help_text()
    assert "$APP_CONFIG_GROUPS" not in text and "${" not in text
    for group, options in hydra_groups.items():
        assert f"\n{group}: {options[0]}" in text


def test_user_config_dirs_get_hydras_own_help():
    from snntrain.cli import _asks_for_help

    assert _asks_for_help(["--help"]) and _asks_for_help(["model=vgg", "-h"])
    for argv in (["--config-dir", "mine", "--help"], ["-cd", "mine", "-h"], ["--config-dir=mine", "--help"],
                 ["hydra.searchpath=[file://mine]", "--help"], ["--hydra-help"]):
        assert not _asks_for_help(argv), argv  # Hydra lists the user's own options too


def test_snntrain_list_cache_gives_the_fresh_text_and_follows_the_sources(tmp_path, monkeypatch, capsys):
    """snntrain-list reads cached descriptions (no torch) that print exactly like freshly imported ones."""
    from snntrain import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cli.list_main(["--markdown"])
    fresh = capsys.readouterr().out
    cache = list((tmp_path / "snntrain").glob("components-*.json"))
    assert len(cache) == 1
    out = subprocess.run([sys.executable, "-c", "import sys; from snntrain.cli import list_main; list_main(['--markdown']);"
                          " print('TORCH', 'torch' in sys.modules, file=sys.stderr)"],
                         capture_output=True, text=True, env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert out.stdout == fresh and "TORCH False" in out.stderr
    cache[0].write_text("[]")  # a stale description would be printed as it is ...
    cli.list_main(["--markdown"])
    assert capsys.readouterr().out.count("\n") == 2
    monkeypatch.setattr(cli.Path, "rglob", lambda self, pat: [*cli.Path.glob(self, "*.py")][:3])  # ... until the sources change
    cli.list_main(["--markdown"])
    assert capsys.readouterr().out == fresh
    assert len(list((tmp_path / "snntrain").glob("components-*.json"))) == 1  # the old one removed
