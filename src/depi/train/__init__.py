"""Training of pi0 / pi0.5 on a dataset mixture: ``depi-train`` (``python -m depi.train``).

``config`` (draccus TrainConfig and presets/), ``loop`` (setup -> train -> save_checkpoint -> cleanup),
``optim`` (AdamW, cosine schedule, EMA), ``checkpoint`` (atomic save / resume), ``metrics`` (JSONL, plot,
per-dataset loss, MFU), ``data`` (what the loop needs from the mixture), ``factory`` (policy and mixture
from a config).
"""
