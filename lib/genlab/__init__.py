"""genlab: deep generative models, trained and measured honestly.

The package is deliberately thin: data loading, models, one training loop,
metrics, plots and the report pipeline. Notebooks only call into it.
"""
from genlab.errors import GenlabError

__version__ = "0.1.0"
__all__ = ["GenlabError", "__version__"]
