"""The command line's front door: every override is checked before Hydra reads it.

``snntrain key=value ...`` passes through :func:`check` first. It reads each override
with Hydra's own grammar and refuses, naming the key, what Hydra would either reject
with its multi-line text or accept with a surprising meaning:

* a group option that is not a file of ``configs/<group>/`` (case-insensitive and
  edit-distance suggestions: ``norm=TEBN`` -> ``tebn``), or a path (``experiment=../train``);
* deletions (``~key``), interpolations (``${...}``), empty values (``resume=``), integers
  outside 64 bits, values longer than 4096 characters or with a path part over 255 bytes;
* characters that look like something else: non-ASCII digits (``T=４``), zero-width and
  other invisible characters, line breaks, non-ASCII keys;
* a run directory (``hydra.run.dir``/``hydra.sweep.dir``) that cannot be a folder: exit 4.

What only composition can tell (``trainer.epoch=3``: no such key) is left to Hydra; when
Hydra raises, :func:`explain` composes the config of the group choices alone and says
which key is unknown, with the closest valid ones (:func:`snntrain.errors.did_you_mean`).
``hydra.*`` keys are Hydra's: they may hold interpolations (``${now:...}``).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, PathError, did_you_mean

MAX_VALUE = 4096  #: characters in one override (PATH_MAX)
NAME_MAX = 255  #: bytes in one path component (every common file system)
INT64 = 2 ** 63
#: keys whose value is a path (checked part by part against NAME_MAX)
PATH_KEYS = ("resume", "dataset.root", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
#: hydra keys that must not be empty (an empty run directory is the current folder)
HYDRA_NONEMPTY = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.job.name")
#: groups whose ``null`` means "none" (the defaults list has them as null)
OPTIONAL_GROUPS = ("experiment", "hparams_search")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*(?:@[A-Za-z0-9_.]*)?")


@dataclass
class Front:
    """What the front door learnt: the overrides, the folder a refused run must not leave anything below."""

    overrides: list[str]
    multirun: bool
    anchor: Path  #: the deepest folder of the run directory's path that existed before the run
    missing: list[Path] = field(default_factory=list)  #: its folders below ``anchor`` (outermost first)
    started: bool = False  #: Hydra composed the config and called the task (later errors are not Hydra's)

    def clean(self) -> None:
        """Remove the folders of :attr:`missing` that exist now and are empty (innermost first)."""
        for p in reversed(self.missing):
            try:
                p.rmdir()
            except OSError:
                pass


def group_options(config_dirs: list[Path]) -> dict[str, list[str]]:
    """Every config group and its options over the packaged configs and ``--config-dir``."""
    from .cli import group_options as one

    out: dict[str, set[str]] = {}
    for root in config_dirs:
        if root.is_dir():
            for group, opts in one(root).items():
                out.setdefault(group, set()).update(opts)
    return {g: sorted(o) for g, o in out.items()}


def _packaged() -> Path:
    from importlib.resources import files

    return Path(str(files("snntrain.configs")))


def _char_problem(text: str) -> str | None:
    for ch in text:
        if ch.isascii() and ch.isprintable():
            continue
        cat = unicodedata.category(ch)
        name = unicodedata.name(ch, "an unnamed character")
        code = f"U+{ord(ch):04X} ({name})"
        if ch in "\n\r":
            return f"holds a line break ({code})"
        if cat == "Nd":
            return f"holds {code}, a digit that is not 0-9"
        if cat in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp") or cat == "Zs":
            return f"holds the invisible or control character {code}"
    return None


def _ascii_form(text: str) -> str | None:
    """The NFKC form with invisible characters dropped, if that is plain ASCII and differs (``T=４`` -> ``T=4``)."""
    plain = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) not in ("Cf", "Cc"))
    plain = plain.strip()
    return plain if plain != text and plain.isascii() and plain.isprintable() else None


def _walk_ints(value: Any):
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_ints(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_ints(v)
    elif isinstance(value, ChoiceSweep):
        for v in value.list:
            yield from _walk_ints(v)
    elif isinstance(value, RangeSweep):
        for v in (value.start, value.stop, value.step):
            yield from _walk_ints(v)


def _strings(value: Any):
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple, ChoiceSweep)):
        for v in value.list if isinstance(value, ChoiceSweep) else value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def check_group_option(group: str, option: Any, options: list[str]) -> None:
    """Refuse ``group=option`` unless ``option`` names a file of the group (``null`` for optional groups)."""
    if option is None and group in OPTIONAL_GROUPS:
        return
    if option in options:
        return
    text = "null" if option is None else str(option)
    valid = f"Valid choices: {', '.join(options)}."
    if option is None:
        raise ConfigError(f"{group}: every run needs a {group}; {valid} Pick one with {group}=<name>.")
    if not isinstance(option, str) or not text.strip():
        raise ConfigError(f"{group}: {text!r} is not a {group}. {valid}")
    if "/" in text or "\\" in text or text.startswith("."):
        raise ConfigError(f"{group}: {text!r} is a path; {group}= takes the name of a file in configs/{group}/ "
                          f"(without .yaml). {valid} Your own configs: --config-dir <folder with {group}/<name>.yaml>.")
    lower = {o.lower(): o for o in options}
    plain = _ascii_form(text) or text
    hint = lower.get(plain.lower()) or lower.get(plain.lower().removesuffix(".yaml"))
    if hint is None:
        import difflib

        close = difflib.get_close_matches(plain.lower(), list(lower), n=1, cutoff=0.6)
        hint = lower[close[0]] if close else None
    mean = f" Did you mean {group}={hint}?" if hint else ""
    raise ConfigError(f"{group}: no {group} named {text!r}.{mean} {valid} (snntrain-list {group} describes them.)")


def _check_path_value(key: str, value: str) -> None:
    long = [p for p in value.split("/") if len(p.encode()) > NAME_MAX]
    if long:
        exc = PathError if key.startswith("hydra.") else ConfigError
        raise exc(f"{key}: the path {value[:60]}... has a part of {len(long[0].encode())} bytes; file systems allow "
                  f"{NAME_MAX} per folder or file name. Use a shorter name.")


def _literal_dir(template: str) -> str:
    """The folder part of ``template`` before its first interpolation (``outputs/${now:..}`` -> ``outputs``)."""
    head, sep, _ = template.partition("${")
    if not sep:
        return head
    return head if head.endswith("/") else os.path.dirname(head)


def run_dir_plan(template: str, key: str) -> tuple[Path, list[Path]]:
    """``(anchor, missing)`` for the run directory ``template``; raise :class:`PathError` for a path that
    cannot be a folder (a file on the way, a folder this user may not write)."""
    path = Path(os.path.abspath(_literal_dir(template) or "."))
    missing = []
    p = path
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise PathError(f"{key}: the run directory {template} cannot be created: {p} is a file, not a folder. "
                        f"Pick a folder ({key}=<folder>).")
    if not os.access(p, os.W_OK | os.X_OK):
        raise PathError(f"{key}: the run directory {template} cannot be created: {p} is not writable by this user. "
                        f"Pick a folder you may write ({key}=<folder>).")
    return p, list(reversed(missing))


def parse_argv(argv: list[str]) -> Any:
    """Hydra's own argument parser over ``argv`` (flags and overrides)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str) -> None:  # one line, like every other refusal
        raise ConfigError(f"{message}. See snntrain --help.")

    parser.error = error  # type: ignore[method-assign]
    return parser.parse_args(argv)


def check(argv: list[str]) -> Front:
    """Check every override of ``snntrain <argv>`` (see the module doc); the run directory's plan.

    Raises :class:`~snntrain.errors.ConfigError` (exit 2) or :class:`~snntrain.errors.PathError` (exit 4).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    args = parse_argv(argv)
    dirs = [_packaged()]
    if args.config_dir:
        dirs.append(Path(args.config_dir))
    searchpath = any(a.startswith(("hydra.searchpath", "+hydra.searchpath", "++hydra.searchpath"))
                     for a in args.overrides)
    groups = group_options(dirs)
    parser = OverridesParser.create()
    hydra_values: dict[str, Any] = {}
    for arg in args.overrides:
        raw_key, sep, raw_value = arg.partition("=")
        name = raw_key.lstrip("+~") or arg[:40]
        if len(arg) > MAX_VALUE:
            raise ConfigError(f"{name[:60]}: the override is {len(arg)} characters long; values are limited to "
                              f"{MAX_VALUE} (no number, path or list here needs more).")
        problem = _char_problem(arg)
        if problem:
            fix = _ascii_form(arg)
            hint = f" Did you mean {fix}?" if fix else " Retype it with plain ASCII characters."
            where = "key" if problem and _char_problem(raw_key) else "value"
            raise ConfigError(f"{_ascii_form(name) or name.encode('ascii', 'backslashreplace').decode()}: the {where} "
                              f"{problem}.{hint}")
        if any(len(part) > 64 for part in re.split(r"[./@]", raw_key)):
            raise ConfigError(f"{name[:60]}...: no key or group name is longer than 64 characters; check the "
                              f"override (key=value).")
        if not _KEY.fullmatch(raw_key.lstrip("+~")):
            raise ConfigError(f"{name or arg}: {arg!r} is not an override; write key=value (e.g. T=8 or "
                              f"trainer.epochs=5), group=option (e.g. norm=tebn), or +key=value for a new key.")
        try:
            o = parser.parse_override(arg)
        except HydraException as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{name}: {arg!r} is not a valid value ({why}). Quote a value holding spaces or "
                              f"special characters (key='a b'); a list is [a,b]; see snntrain --help.") from None
        key = o.key_or_group
        is_hydra = key.startswith("hydra.") or key.startswith("hydra/") or key == "hydra"
        if o.type == OverrideType.DEL:
            if is_hydra:
                continue
            raise ConfigError(f"{key}: deleting a key (~{key}) is not supported: every key of the config has a meaning. "
                              f"Set it to another value ({key}=...), or to null where it allows null.")
        value = o.value()
        if o.is_sweep_override() and not args.multirun:
            raise ConfigError(f"{key}: {raw_value!r} is a sweep (several values), which needs -m: snntrain -m {arg}. "
                              f"A single value that holds a comma is quoted: {key}='a,b'.")
        if is_hydra:
            hydra_values[key] = value
            if key in HYDRA_NONEMPTY and (value is None or (isinstance(value, str) and not value.strip())):
                raise ConfigError(f"{key}: empty; an empty run directory would be the current folder. Give a folder "
                                  f"({key}=runs/my_run) or leave {key} out for outputs/<date>/<time>.")
            if key in PATH_KEYS and isinstance(value, str):
                _check_path_value(key, value)
            continue
        for text in _strings(value):
            if "${" in text:
                raise ConfigError(f"{key}: the value {text!r} is an interpolation; the command line takes plain values "
                                  f"(interpolations such as ${{...}} and ${{oc.env:...}} are not resolved here). "
                                  f"Write the value itself, e.g. {key}=8.")
            if not text.strip():
                raise ConfigError(f"{key}: the value is empty, which means nothing here. Give a value, or null where "
                                  f"the key allows none ({key}=null).")
            if key in PATH_KEYS:
                _check_path_value(key, text)
        for n in _walk_ints(value):
            if not -INT64 <= n < INT64:
                raise ConfigError(f"{key}: {str(n)[:30]}{'...' if len(str(n)) > 30 else ''} ({len(str(abs(n)))} digits) "
                                  f"is too large: integers here are 64-bit (below 2**63 = 9223372036854775808).")
        if key in groups and o.package is None and not searchpath:
            from hydra.core.override_parser.types import ChoiceSweep

            for option in value.list if isinstance(value, ChoiceSweep) else [value]:
                if not hasattr(option, "start"):  # range()/interval() sweeps are for numbers; Hydra refuses them
                    check_group_option(key, option, groups[key])
    template = hydra_values.get("hydra.sweep.dir" if args.multirun else "hydra.run.dir")
    if not isinstance(template, str):
        from omegaconf import OmegaConf

        hydra_cfg = OmegaConf.load(_packaged() / "train.yaml").hydra
        template = OmegaConf.to_container(hydra_cfg, resolve=False)["sweep" if args.multirun else "run"]["dir"]
    key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
    anchor, missing = run_dir_plan(template, key)
    return Front(list(args.overrides), bool(args.multirun), anchor, missing)


# ---- after Hydra raised -------------------------------------------------------------------------
def _clean_hydra_text(err: BaseException) -> str:
    """The first informative line of Hydra's (or OmegaConf's) message, without Hydra's boilerplate."""
    lines: list[str] = []
    e: BaseException | None = err
    while e is not None and len(lines) < 2:
        for line in str(e).splitlines():
            line = line.strip()
            if line and not any(line in seen for seen in lines) and not any(s in line for s in ("Config search path", "provider=", "HYDRA_FULL_ERROR",
                                                    "full_key:", "object_type=", "See https://hydra.cc")):
                lines.append(line)
                break
        e = e.__cause__ or e.__context__
    return " ".join(lines) or type(err).__name__


def explain(front: Front, err: BaseException) -> ConfigError:
    """One paragraph for an error Hydra (or OmegaConf) raised composing ``front.overrides``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    parser = OverridesParser.create()
    parsed = [parser.parse_override(a) for a in front.overrides]
    groups = group_options([_packaged()])
    choices = [a for a, o in zip(front.overrides, parsed) if o.key_or_group in groups or "/" in o.key_or_group]
    try:
        base = compose_plain(choices)
    except Exception:  # the group choices themselves fail: say what Hydra said, without its boilerplate
        base = None
    text = _clean_hydra_text(err)
    if base is not None:
        from omegaconf import OmegaConf

        for arg, o in zip(front.overrides, parsed):
            key = o.key_or_group
            if arg in choices or key.startswith("hydra"):
                continue
            try:
                exists = OmegaConf.select(base, key, default=_MISSING, throw_on_missing=False) is not _MISSING
            except Exception:  # noqa: BLE001 - e.g. T.x: T is a value, model.hidden.x: hidden is a list
                exists = False
            if o.type == OverrideType.ADD and exists:
                return ConfigError(f"{key}: already in the config, so +{key} cannot add it; set it without the "
                                   f"plus: {arg.lstrip('+')}.")
            if o.type == OverrideType.CHANGE and not exists:
                return unknown(base, key, arg)
    full_keys = [getattr(e, "full_key", None) for e in (err, err.__cause__, err.__context__)]
    culprit = next((k for k in full_keys if k), None)
    culprit = culprit or next((o.key_or_group for o in parsed if o.key_or_group and o.key_or_group in text), None)
    culprit = culprit or (parsed[0].key_or_group if len(parsed) == 1 else "overrides")
    return ConfigError(f"{culprit}: {text} (see snntrain --help for the groups and keys).")


_MISSING = object()


def unknown(base: Any, key: str, arg: str) -> ConfigError:
    """``key`` is not in the composed config ``base``: name its section's valid keys and the closest ones."""
    from omegaconf import DictConfig

    parts = key.split(".")
    section, prefix = base, ""
    for i, part in enumerate(parts[:-1]):
        try:
            node = section.get(part) if isinstance(section, DictConfig) else None
        except Exception:  # noqa: BLE001 - an interpolation that does not resolve
            node = None
        if not isinstance(node, DictConfig):
            if node is not None:
                return ConfigError(f"{key}: {prefix}{part} is a value ({str(node)[:40]}), not a section with keys. "
                                   f"Set {prefix}{part}=... itself.")
            break
        section, prefix = node, prefix + part + "."
    valid = [k for k in section.keys() if k != "name"] if isinstance(section, DictConfig) else []
    where = f"{prefix[:-1]}={section.get('name')}" if prefix and "name" in section else (prefix[:-1] or "the snntrain config")
    hint = did_you_mean(key, [prefix + k for k in valid] + ([] if prefix else list(valid)), section=section)
    return ConfigError(f"{key}: not a key of {where}.{hint} Valid keys: {', '.join(valid)}. Fix its spelling "
                       f"(snntrain-list describes every component's arguments).")


def compose_plain(overrides: list[str]):
    """The config Hydra composes from ``overrides`` (no run, no run directory)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="snntrain.configs", version_base=None):
            return compose(config_name="train", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
