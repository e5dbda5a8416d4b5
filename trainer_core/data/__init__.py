"""trainer_core/data."""
