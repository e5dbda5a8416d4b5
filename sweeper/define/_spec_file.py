"""Reading a study spec file: every error is one line that starts with the file name.

The YAML is read as train configs are (:func:`trainer_core.yaml_io.load_yaml_text`), so
``1e-4`` is a float in both.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sweeper.define._spec import StudySpec, parse_spec
from sweeper.errors import SpecError
from trainer_core.yaml_io import load_yaml_text


def load_spec(path: Path | str) -> StudySpec:
    """Read and validate a YAML study spec.

    Raises:
        SpecError: the file is missing, unreadable, not YAML, or breaks a rule; the
            message starts with the file name.

    Example:
        >>> spec = load_spec("studies/demo.yaml")
        >>> spec.name
        'demo'
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise SpecError(f"{path}: no such file") from e
    except OSError as e:
        raise SpecError(f"{path}: cannot read ({e.strerror})") from e
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return parse_spec(data, source=str(path))
