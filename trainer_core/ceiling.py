"""The round-trip ceiling: the best H-mean any model can reach with given target settings.

A perfect model reproduces its training target. Post-processing that target map and
scoring the result against the ground truth therefore bounds every trained model from
above: whatever the shrink ratio takes away and the unclip ratio does not give back is lost
for good. Measured with DB's defaults (shrink 0.4, unclip 1.5): every word of the ICDAR 2015
toy set comes back (1.0; the thinnest, 88 x 13 px, at IoU 0.504); the SROIE receipt lines
score 0.92, against 0.99 with unclip 2.0 (0.83 against 0.87 with maps at most 640 px): long
thin lines come back too thin, which is why the receipts study searches ``unclip_ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer_core.config import PostprocessConfig, TargetsConfig
from trainer_core.data.annotations import Sample, image_size
from trainer_core.data.targets import db_targets
from trainer_core.errors import DataError
from trainer_core.metrics import DetectionMetrics, detection_metrics
from trainer_core.postprocess import polygons_from_prob, postprocess_config_kwargs

__all__ = ["roundtrip_ceiling"]


def roundtrip_ceiling(
    samples: Sequence[Sample],
    targets: TargetsConfig,
    postprocess: PostprocessConfig,
    max_side: int | None = None,
) -> DetectionMetrics:
    """Ground truth -> DB probability target -> post-processing -> H-mean.

    Each image's probability target (built as training builds it, don't-care and too-small
    regions left out exactly as the loss mask leaves them out) is post-processed as if a
    model had predicted it, the regions are mapped back to image coordinates and scored
    with :func:`~trainer_core.metrics.detection_metrics` (dataset counts).

    Args:
        samples: annotated images; only their headers are read, for the size.
        targets: shrink ratio and the other target settings under test.
        postprocess: thresholds and unclip ratio under test.
        max_side: build maps with the longer side at most this many pixels (faster; like
            training at a smaller input size). None keeps the images' own size.

    Returns:
        The metrics a perfect model would score.

    Raises:
        DataError: an image cannot be read.

    Example:
        >>> samples = read_icdar(Path("data/icdar2015_toy/images"))  # doctest: +SKIP
        >>> roundtrip_ceiling(samples, TargetsConfig(), PostprocessConfig()).hmean  # doctest: +SKIP
        1.0
    """
    kwargs = postprocess_config_kwargs(postprocess)
    gts, ignores, preds = [], [], []
    for sample in samples:
        size = image_size(sample.image)
        if size is None:
            raise DataError(f"{sample.image}: cannot read the image")
        height, width = size
        scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
        map_h, map_w = max(1, round(height * scale)), max(1, round(width * scale))
        to_map = np.array([map_w / width, map_h / height], np.float32)
        prob, *_ = db_targets(
            (map_h, map_w),
            [p * to_map for p in sample.polygons],
            list(sample.ignore),
            shrink_ratio=targets.shrink_ratio,
            thresh_min=targets.thresh_min,
            thresh_max=targets.thresh_max,
            min_text_size=targets.min_text_size,
        )
        found, _ = polygons_from_prob(prob, **kwargs)
        gts.append(list(sample.polygons))
        ignores.append(list(sample.ignore))
        preds.append([p / to_map for p in found])
    return detection_metrics(gts, ignores, preds)
