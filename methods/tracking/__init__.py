"""Tracking: DeepSORT, ReID embeddings and optical-flow smoothing (issue 6)."""
