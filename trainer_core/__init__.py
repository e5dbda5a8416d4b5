"""trainer_core: the DBNet text-detection workload in plain PyTorch (never imports optuna)."""

import os

# albumentations asks PyPI for a newer version at import; there is no network here or on
# most GPU nodes, and a training process should not wait on one.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
