"""Names that become folder or file names under a results folder, and the one rule they follow.

Recipe and method names, every part of a result path, and every name read back
from a result file that a report turns into a path (a figure named after its
recipe) go through `name_problem`: ASCII letters, digits and . _ - +, starting
with a letter or digit, never '..'. No '/', no '\\', no NUL, no leading '.' or
'-', so a name can neither leave the folder nor hide, nor read as an option.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

NAME_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_NAME_LENGTH = 64  # names in a recipe
MAX_PATH_PART_LENGTH = 128  # parts of a result path, which also holds generated labels (tuning, ablation)
NAME_RULE = "letters, digits, '.', '_', '-' or '+', starting with a letter or digit, without '..'"


def name_problem(text: object, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why `text` cannot be a folder name under the results folder, or None when it can."""
    if not isinstance(text, str):
        return f"must be text, not {type(text).__name__}"
    if not 1 <= len(text) <= max_length or not NAME_CHARACTERS.fullmatch(text) or ".." in text:
        return f"is not a usable name: it becomes a folder name, so use 1 to {max_length} {NAME_RULE}"
    return None


def safe_name(value: str) -> str:
    """Pydantic check behind SafeName."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


SafeName = Annotated[str, Field(strict=True), AfterValidator(safe_name)]
