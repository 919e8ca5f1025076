"""pi0 and pi0.5 vision-language-action policies (own PyTorch implementation)."""

from depi.policies.pi0.config import GemmaConfig, PI0Config, PI05Config, SiglipConfig, make_config
from depi.policies.pi0.model import PI0Policy
from depi.policies.pi0.weights import LoadReport, WeightLoadError, load_weights

__all__ = [
    "GemmaConfig",
    "LoadReport",
    "PI0Config",
    "PI0Policy",
    "PI05Config",
    "SiglipConfig",
    "WeightLoadError",
    "load_weights",
    "make_config",
]
