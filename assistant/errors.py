"""The one family of errors the assistant raises on purpose. Each message says what to do next.

The command line prints any `AssistantError` as one line and exits 2; anything else is a bug and
shows its traceback. Errors about bad input also derive from `ValueError`, so callers that
checked for that keep working.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Root of the family."""


class UsageError(AssistantError, ValueError):
    """A request the user can fix: an empty question, a bad session id, a wrong argument."""


class IngestError(AssistantError):
    """A file that cannot be indexed; the message says why."""


class IndexStoreError(AssistantError):
    """The store cannot be opened or written; the message says what to do."""


class EmbeddingModelError(AssistantError):
    """The embedding model cannot be loaded."""


class ReaderError(AssistantError):
    """The trained reader cannot be loaded."""


class LLMError(AssistantError):
    """The configured LLM cannot be reached or built."""


class QuoteMismatch(AssistantError):
    """A quote is not the text at its offsets: a bug in whatever produced it; the answer is withheld."""


class EvalError(AssistantError, ValueError):
    """The evaluation cannot run as asked; the message says what to change."""


class GoldenFileError(AssistantError, ValueError):
    """A golden file that cannot be used; the message names the file and line."""


class PromptError(AssistantError, ValueError):
    """A prompt file that is missing or malformed."""


class UsersFileError(AssistantError):
    """The users file of the web chat's sign-in is missing, empty or unreadable; the message says what to do."""
