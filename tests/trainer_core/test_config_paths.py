"""TrainConfig's dotted paths: which are fields, which take numbers, hints for typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_core.config_paths import field_annotation, numeric_kind, unknown_field_hint


@pytest.mark.parametrize(
    ("path", "annotation"),
    [
        ("optimizer.lr", float),
        ("scheduler.T_max", int | None),
        ("model.weights", Path | None),
        ("epochs", int),
        ("optimizer", None),  # a section, not a leaf field
        ("optimizer.lr.x", None),
        ("optimizer.nope", None),
        ("nope.lr", None),
    ],
)
def test_field_annotation(path: str, annotation: object) -> None:
    assert field_annotation(path) == annotation


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("scheduler.T_max", "int"),
        ("epochs", "int"),
        ("optimizer.lr", "float"),
        ("grad_clip", "float"),
        ("model.backbone", None),
        ("model.pretrained", None),
        ("augment.scale", None),
        ("nope", None),
    ],
)
def test_numeric_kind(path: str, kind: str | None) -> None:
    assert numeric_kind(path) == kind


def test_unknown_field_hint_names_what_was_meant() -> None:
    assert unknown_field_hint("lr") == (
        "'lr' is not a train-config field; did you mean optimizer.lr?"
    )
    assert unknown_field_hint("thresh") == (
        "'thresh' is not a train-config field; did you mean postprocess.thresh?"
    )
    assert unknown_field_hint("nope") == "'nope' is not a train-config field"
    section = unknown_field_hint("early_stopping")
    assert section == (
        "'early_stopping' is a train-config section; name one of its fields: "
        "early_stopping.patience, early_stopping.min_delta"
    )
