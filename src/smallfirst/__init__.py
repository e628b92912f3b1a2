"""smallfirst: a local-first hybrid LLM gateway speaking the OpenAI API."""

from __future__ import annotations

import os

# llama.cpp's OpenMP threads sleep while they wait rather than spin. libgomp reads this once,
# when it is loaded (with llama_cpp), hence here: before any module can import llama_cpp. The
# gateway shares its cores with its own NER, encoder and Python, and often with other
# processes; spinning threads then take the core the thread they wait for needs, and on 2
# cores generation ran several times slower (benchmarks/omp_wait_policy.py, docs/benchmarks.md).
# A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# onnxruntime (1.29 and later) collects telemetry on Linux too: importing it wrote a device id
# and an event queue for upload under ~/.cache/Microsoft (the embedding encoder's runtime; soak
# QA). A gateway that keeps data on the machine sends none: this is its opt-out, read when
# onnxruntime loads. A value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
__all__ = ["__version__"]
