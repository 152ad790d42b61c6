"""Bounded YAML loading: a recipe file can be wrong, never hang, crash or be silently misread.

`yaml.safe_load` already refuses to build arbitrary objects, but a few lines of
YAML can still make it, or whatever reads its result, unbounded:

* aliases (`b: &b [*a, *a, ...]`) share one value, so a 1 KB file can stand for
  10^9 values that validation and error messages then walk one by one;
* nesting (`[[[[...`) is composed recursively, so 100,000 brackets end in a
  RecursionError;
* a duplicate key silently keeps the last value.

`load_yaml_file` therefore checks the file size before parsing, and its loader
counts, while composing, every value a document stands for with aliases
expanded (each alias adds the full size of what it names) and the nesting depth
with aliases expanded, and stops at the first value over a limit. Every problem
is a one-line ConfigError naming the file and, where known, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import ScalarNode

from ..settings.validation import MAX_INT_DIGITS, cut, excerpt
from ..errors import ConfigError, UnreadableFile
from ..files import read_bounded

MAX_BYTES = 1024 * 1024  # the packaged recipes are ~5 KB
MAX_DEPTH = 64  # the packaged recipes nest 5 levels deep
MAX_VALUES = 100_000  # the packaged recipes hold a few hundred values, aliases expanded
MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(yaml.YAMLError):
    """A document over one of the limits, or a duplicate key; `mark` is where (None: unknown)."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


def line_of(mark) -> str:
    return f" at line {mark.line + 1}" if mark is not None else ""


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that enforces MAX_DEPTH and MAX_VALUES while composing and rejects duplicate keys.

    For each composed node it records its expanded size (the node and everything
    under it, with aliases expanded) and its height, so that an alias costs what
    it stands for without walking it again: the counting is linear in the file.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0  # nodes being composed (ancestors of the next one, plus itself)
        self.values = 0  # values composed so far in this document, aliases expanded
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height), for finished nodes
        self.heights = [0]  # per node being composed: the greatest height among its finished children

    def compose_node(self, parent, index):
        event = self.peek_event()
        if self.depth >= MAX_DEPTH:
            raise LimitError(f"nested more than {MAX_DEPTH} levels deep{line_of(event.start_mark)}; "
                             "a recipe needs about 5", event.start_mark)
        is_alias = isinstance(event, AliasEvent)
        before = self.values
        self.depth += 1
        self.heights.append(0)
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
            children_height = self.heights.pop()
        if is_alias:
            if id(node) not in self.sizes:  # the alias names a value it is part of
                raise LimitError(f"alias *{event.anchor}{line_of(event.start_mark)} refers to a value that "
                                 "contains it; a recipe cannot be recursive", event.start_mark)
            size, height = self.sizes[id(node)]
            if self.depth + height > MAX_DEPTH:
                raise LimitError(f"nested more than {MAX_DEPTH} levels deep{line_of(event.start_mark)} "
                                 f"once alias *{event.anchor} is expanded; a recipe needs about 5", event.start_mark)
            self.values += size
        else:
            self.values += 1
            size, height = self.values - before, children_height + 1
            self.sizes[id(node)] = (size, height)
        if self.values > MAX_VALUES:
            raise LimitError(f"holds more than {MAX_VALUES} values{line_of(event.start_mark)} (each *alias counts "
                             "as a full copy of what it names); a recipe holds a few hundred", event.start_mark)
        self.heights[-1] = max(self.heights[-1], height)
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # a merge key (<<) only supplies defaults; an unhashable key fails when constructed
            key = self.construct_object(key_node)  # as the mapping will hold it: `1` and `1.0` collide
            try:
                seen = first_line.get(key)
            except TypeError:
                continue
            line = key_node.start_mark.line + 1
            if seen is not None:
                raise LimitError(f"duplicate key {excerpt(key_node.value)} at line {line} (first at line {seen}); "
                                 "YAML would silently keep only the last value. Fix: keep one",
                                 key_node.start_mark)
            first_line[key] = line
        return node

    def construct_yaml_int(self, node):
        """An integer, its digits counted before Python converts it (which refuses more than 4,300 of them)."""
        digits = sum(character.isdigit() for character in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise LimitError(f"a whole number of {digits:,} digits{line_of(node.start_mark)} is too large "
                             f"(at most {MAX_INT_DIGITS} digits; every bound of a recipe has fewer)", node.start_mark)
        return super().construct_yaml_int(node)

    def compose_document(self):
        node = super().compose_document()
        self.sizes.clear()
        return node


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def load_yaml_file(path: Path) -> Any:
    """Read and parse one YAML document from `path` within the limits above, or raise a ConfigError naming it."""
    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a folder, not a recipe file. Fix: give the path of a .yaml file.")
    try:
        data = read_bounded(path, MAX_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{path}: does not exist.") from None
    except UnreadableFile as exc:
        if exc.too_large:
            raise ConfigError(
                f"{path}: is larger than {MAX_BYTES // 1024 // 1024} MiB; a recipe is a short YAML file (the packaged ones "
                "are ~5 KB). Is this the right file?"
            ) from None
        raise ConfigError(f"{path}: cannot be read as a recipe: {exc.reason}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text; a recipe is a YAML file.") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document with BoundedLoader; errors are one-line ConfigErrors starting with `source`."""
    loader = None
    try:
        loader = BoundedLoader(text)  # already reads the text: unacceptable characters fail here
        return loader.get_single_data()
    except LimitError as exc:
        raise ConfigError(f"{source}: {exc.problem}.") from None
    except RecursionError:  # not expected within MAX_DEPTH; never a traceback if it happens anyway
        raise ConfigError(f"{source}: nested too deeply; a recipe nests about 5 levels.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
        problem = cut(" ".join(problem.split()), 160)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}.") from None
    finally:
        if loader is not None:
            loader.dispose()
