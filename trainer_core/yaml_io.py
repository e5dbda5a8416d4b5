"""YAML as this project reads and writes it: safe, plain data, ``1e-4`` is a float.

PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-4``) and ``1e-4`` is a string.
Learning rates are written ``1e-4``; read as strings they become string choices in a spec
and fail int fields (``T_max: 2e1``) in a train config. Every YAML the project reads (study
specs, train configs, ``--set key=value`` values) goes through :func:`load_yaml_text`, so a
value means the same wherever it is written, and :func:`dump_yaml_text` writes what it
reads back unchanged. Files are read by :func:`read_yaml_file`: UTF-8, and every problem one
line that starts with the file name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from trainer_core.errors import ConfigError

__all__ = ["dump_yaml_text", "load_yaml_text", "read_yaml_file"]

# YAML 1.2's float syntax: the exponent form without a dot is added to YAML 1.1's rule.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_FLOAT_FIRST = list("-+0123456789.")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings :class:`_Loader` would read as floats (``"1e-4"``)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, _FLOAT_FIRST)
_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, _FLOAT_FIRST)


def load_yaml_text(text: str) -> Any:
    """Plain data from YAML text, like ``yaml.safe_load`` but with ``1e-4`` a float.

    Raises:
        yaml.YAMLError: the text is not valid YAML.

    Example:
        >>> load_yaml_text("lr: 1e-4\\nT_max: 2e1")
        {'lr': 0.0001, 'T_max': 20.0}
    """
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: Path | str) -> Any:
    """Plain data from a UTF-8 YAML file, read as :func:`load_yaml_text` reads text.

    Raises:
        ConfigError: the file is missing or unreadable, not UTF-8 (the message gives the
            first bad byte's position, line and column) or not valid YAML; one line that
            starts with the file name.

    Example:
        >>> read_yaml_file("studies/demo.yaml")["name"]
        'demo'
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such file") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{path}: not UTF-8: byte 0x{raw[e.start]:02x} at position {e.start} (line "
            f"{line}, column {column}); save the file as UTF-8"
        ) from e
    try:
        return load_yaml_text(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e


def dump_yaml_text(data: Any) -> str:
    """YAML text for plain data, keys in order, that :func:`load_yaml_text` reads back equal.

    Example:
        >>> print(dump_yaml_text({"lr": 1e-4, "name": "1e-4"}), end="")
        lr: 0.0001
        name: '1e-4'
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
