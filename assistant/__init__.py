"""A question-answering assistant over a document collection, with verbatim, checked citations."""

from .settings import Settings  # noqa: I001  (sets the offline environment before the rest imports)
from .assistant import Assistant
from .records import Answer, Citation

__all__ = ["Assistant", "Answer", "Citation", "Settings"]
__version__ = "0.1.0"
