"""Engines behind one small interface: in-process llama.cpp, any OpenAI-compatible URL, fake."""

from smallfirst.backends.base import Backend
from smallfirst.backends.registry import build_backends

__all__ = ["Backend", "build_backends"]
