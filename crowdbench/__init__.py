"""crowdbench: regenerate crowded-scene detection, pose and tracking ablation tables.

The code lives in four sibling folders installed under this namespace: ``crowdbench.bench`` (harness),
``crowdbench.methods`` (paper techniques as plugins), ``crowdbench.datasets`` (data model, formats, synthetic
crowds) and ``crowdbench.reports`` (terminal, Markdown, CSV, HTML).
"""

__version__ = "0.1.0"
