"""smallfirst: a local-first hybrid LLM gateway speaking the OpenAI API."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
