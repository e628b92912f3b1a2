"""smallfirst: a local-first hybrid LLM gateway speaking the OpenAI API."""

from __future__ import annotations

import os

# llama.cpp's OpenMP threads spin only briefly before they sleep while they wait. libgomp
# reads this once, when it is loaded (with llama_cpp), hence here: before any module can import
# llama_cpp. The gateway shares its cores with its own NER, encoder and Python, and often with
# other processes; libgomp's default (300,000 spins) then takes the core the awaited thread
# needs: on 2 cores beside one busy process, generation fell from 37 to 1-4 tokens/s (13.6 with
# 3,000 spins); sleeping at once (PASSIVE) costs 44% when the machine is quiet, 3,000 spins
# nothing measurable (benchmarks/omp_wait_policy.py, docs/benchmarks.md). A user's own
# OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")
# onnxruntime (1.29 and later) collects telemetry on Linux too: importing it wrote a device id
# and an event queue for upload under ~/.cache/Microsoft (the embedding encoder's runtime; soak
# QA). A gateway that keeps data on the machine sends none: this is its opt-out, read when
# onnxruntime loads. A value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
__all__ = ["__version__"]
