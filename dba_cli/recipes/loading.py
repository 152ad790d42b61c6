"""Finding, reading and composing recipe files: packaged names or paths, `extends:`, and `--set` overrides.

A recipe may start from another (`extends: mnist-1pct`) and change a few
values: mappings merge key by key, any other value replaces the parent's, and
`null` removes the parent's value (back to its default, or no section). The
command line may then override any value (`--set methods.sgd.lr=0.05`, the
habit of timm and Hydra users); the result is validated as one recipe, and
the overridden values are in every run's config like any other value.
Reading is bounded (safe_yaml.py).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..settings.environment import RECIPES_DIR as RECIPES_DIR_ENV
from ..settings.validation import config_error, excerpt
from .recipe import Recipe
from .safe_yaml import load_yaml_file, parse_yaml

MAX_EXTENDS = 8  # a chain of recipes extending each other, at most this long
# The order reports list recipes in: the paper's settings, then beyond the paper (a CNN, Fashion-MNIST).
RECIPE_ORDER = (
    "mnist-1pct", "mnist-10-per-class", "mnist-full", "mnist-1pct-cnn", "fashion-1pct", "fashion-10-per-class", "fashion-full",
    "mnist-1pct-sym20", "mnist-1pct-sym50", "mnist-1pct-pair45", "mnist-1pct-imb10",
)


def recipe_order(name: str) -> tuple[int, str]:
    """Sort key: RECIPE_ORDER first, then any other recipe by name."""
    return (RECIPE_ORDER.index(name) if name in RECIPE_ORDER else len(RECIPE_ORDER), name)


def recipes_dir() -> Path:
    """`DBA_RECIPES_DIR`, else the recipes shipped inside the package (`dba_cli/recipe_files/`).

    They ship as package data, so a wheel install finds them as an editable one
    does; the repository's top-level `recipes/` is a link to the same folder.
    """
    if os.environ.get(RECIPES_DIR_ENV):
        return Path(os.environ[RECIPES_DIR_ENV])
    return Path(__file__).resolve().parent.parent / "recipe_files"


def list_recipes() -> dict[str, Path]:
    folder = recipes_dir()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def missing_recipes_folder() -> ConfigError:
    """The one-line error for an installation (or DBA_RECIPES_DIR) without its recipe folder."""
    where = f"{RECIPES_DIR_ENV}={os.environ[RECIPES_DIR_ENV]}" if os.environ.get(RECIPES_DIR_ENV) else "the installed package"
    return ConfigError(
        f"no recipe folder at {recipes_dir()} (looked there because of {where}). Fix: reinstall dba "
        f"(`pip install dba-cli` ships the recipes), point {RECIPES_DIR_ENV} to a folder of .yaml recipes, "
        "or give a recipe file's path."
    )


def looks_like_path(name_or_path: str) -> bool:
    return Path(name_or_path).suffix in (".yaml", ".yml") or os.sep in name_or_path


def find_recipe(name_or_path: str, beside: Path | None = None) -> Path:
    """A packaged recipe's name (see `recipes_dir`) or a path to the user's own YAML file.

    `beside`: the folder of the recipe that names this one in `extends:`; a
    relative path, or a name found there, is looked up in it first.
    """
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if beside is not None and not path.is_absolute():
            path = beside / path
        try:
            if path.is_dir():
                raise ConfigError(f"recipe file {path} is a folder, not a recipe file. Fix: give the path of a .yaml file.")
            if not path.exists():
                raise ConfigError(f"recipe file {path} does not exist.")
            if not path.is_file():
                raise ConfigError(f"recipe file {path} is not a regular file (a device, pipe or socket); a recipe is a .yaml file.")
        except OSError as exc:  # e.g. a name too long for the file system
            raise ConfigError(f"recipe file {excerpt(str(path))} cannot be read ({exc.strerror or exc}).") from None
        return path
    if beside is not None and (beside / f"{name_or_path}.yaml").is_file():
        return beside / f"{name_or_path}.yaml"
    if not recipes_dir().is_dir():
        raise missing_recipes_folder()
    known = list_recipes()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"recipe {name_or_path!r} not found in {recipes_dir()}.{hint} "
        f"Known recipes: {', '.join(known) or 'none'}; or give a path to a .yaml file."
    )


def merged(base: dict, child: dict) -> dict:
    """`child` over `base`: mappings merge key by key, other values replace, None removes the key."""
    result = dict(base)
    for key, value in child.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def read_document(name_or_path: str, beside: Path | None = None, chain: tuple[Path, ...] = ()) -> tuple[dict, Path]:
    """The recipe document at `name_or_path` with everything it extends merged in, and its file."""
    path = find_recipe(name_or_path, beside)
    if path.resolve() in chain:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(map(str, chain))}; a recipe cannot extend itself.")
    if len(chain) >= MAX_EXTENDS:
        raise ConfigError(f"{path}: more than {MAX_EXTENDS} recipes extend one another; shorten the chain.")
    document = load_yaml_file(path)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping (key: value lines), got {type(document).__name__}.")
    parent = document.pop("extends", None)
    if parent is None:
        return document, path
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: extends: must be a recipe name or the path of a .yaml file (got {excerpt(parent)}).")
    if "name" not in document:
        raise ConfigError(f"{path}: a recipe that extends another must give its own `name:` (its results go under it).")
    base, _ = read_document(parent, path.parent, (*chain, path.resolve()))
    return merged(base, document), path


def apply_overrides(document: dict, overrides: list[str], source: str) -> dict:
    """`KEY.PATH=VALUE` overrides (`--set`) applied to a recipe document; VALUE is YAML (`null` removes the key)."""
    document = dict(document)
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.strip() for part in parts):
            raise ConfigError(f"--set {excerpt(item)}: expected KEY=VALUE with a dotted key, e.g. methods.sgd.lr=0.05.")
        value = parse_yaml(text, f"--set {key}")
        document = merged(document, nested(parts, value))
    return document


def nested(parts: list[str], value: Any) -> dict:
    """['a', 'b'], 1 -> {'a': {'b': 1}}."""
    result: Any = value
    for part in reversed(parts):
        result = {part.strip(): result}
    return result


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """Read, compose and validate a recipe; every problem becomes a ConfigError naming the file.

    Reading is bounded (size, nesting, values with aliases expanded, no duplicate
    keys: see safe_yaml), and every name that becomes a folder of the results is
    checked here (SafeName), before anything is planned or written. Each
    method must also make a valid run, checked here too.
    """
    document, path = read_document(name_or_path)
    if overrides:
        document = apply_overrides(document, overrides, str(path))
    try:
        recipe = Recipe.model_validate(document)
    except ValidationError as exc:
        raise config_error(exc, Recipe, str(path)) from None
    recipe._source = str(path)
    recipe.runs(seeds=1)  # each method must also make a valid run config
    recipe.defaults  # noqa: B018 - and the recipe's own data, model and training settings
    recipe.check_searches()  # and every setting its tuning searches would train
    return recipe
