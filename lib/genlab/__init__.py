"""genlab: deep generative models, trained and measured honestly.

The package is deliberately thin: data loading, models, one training loop,
metrics, plots and the report pipeline. Notebooks only call into it.
"""
from genlab.errors import GenlabError
from genlab.memory import tune_malloc

tune_malloc()   # tensors reuse freed memory instead of page-faulting fresh pages (genlab.memory says why)

__version__ = "0.1.0"
__all__ = ["GenlabError", "__version__"]
