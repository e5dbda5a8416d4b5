"""Reading a study spec file: every error is one line that starts with the file name.

The file is read as train configs are (:func:`trainer_core.yaml_io.read_yaml_file`): UTF-8,
and ``1e-4`` is a float in both.
"""

from __future__ import annotations

from pathlib import Path

from sweeper.define._spec import StudySpec, parse_spec
from sweeper.errors import SpecError
from trainer_core.errors import ConfigError
from trainer_core.yaml_io import read_yaml_file


def load_spec(path: Path | str) -> StudySpec:
    """Read and validate a YAML study spec.

    Raises:
        SpecError: the file is missing, unreadable, not UTF-8, not YAML, or breaks a rule;
            the message starts with the file name.

    Example:
        >>> spec = load_spec("studies/demo.yaml")
        >>> spec.name
        'demo'
    """
    try:
        data = read_yaml_file(path)
    except ConfigError as e:
        raise SpecError(str(e)) from e
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return parse_spec(data, source=str(path))
