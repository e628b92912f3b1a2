"""`smallfirst serve` shows the gateway's own log lines in uvicorn's format, at its level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from smallfirst.cli.serve import _show_gateway_log


@pytest.fixture
def gateway_log() -> Iterator[logging.Logger]:
    logger = logging.getLogger("smallfirst")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_info_lines_show_at_the_info_level_and_not_at_warning(
    gateway_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    _show_gateway_log("info")
    logging.getLogger("smallfirst.backends").info("loaded m: 4 slot(s)")
    assert capsys.readouterr().err == "INFO:     loaded m: 4 slot(s)\n"
    _show_gateway_log("warning")
    logging.getLogger("smallfirst.backends").info("loaded n")
    assert "loaded n" not in capsys.readouterr().err


def test_uvicorns_trace_level_shows_everything(gateway_log: logging.Logger) -> None:
    _show_gateway_log("trace")
    # DEBUG, or uvicorn's TRACE (5) once a uvicorn.Config has named it (another test's)
    assert gateway_log.level <= logging.DEBUG
