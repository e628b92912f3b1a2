"""`smallfirst config check [FILE]` and `smallfirst config show`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import yaml

from smallfirst.cli.common import (
    CONFIG_ENV,
    CONFIG_OPTION,
    adapter_file_problems,
    check_api_keys_or_exit,
    check_data_dir_or_exit,
    check_privacy_or_exit,
    check_request_log_or_exit,
    check_routing_or_exit,
    check_stored_responses_or_exit,
    config_warnings,
    fail,
    local_engine_problems,
    model_file_problems,
    refuse_model_file_problems,
    settings_or_exit,
    warn,
)
from smallfirst.config import BUILT_IN, Settings

app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)


@app.command("check")
def check(
    file: Path | None = typer.Argument(
        None, help=f"YAML config (default: ${CONFIG_ENV}, else the built-in defaults)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="The same file, named as every other command names it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved config as JSON."),
) -> None:
    """Validate a config file: exit 2 naming the key and the file (or variable) of an
    invalid setting, 1 naming what this machine lacks to run a valid one."""
    if file is not None and config is not None and file != config:
        fail(f"two config files given ({file} and --config {config}): give one")
    # SMALLFIRST_CONFIG only when no file is named: read by the argument, it clashed with
    # --config ("two config files given") where every other command lets --config win
    checked = config or file or _path_from_env()
    settings = settings_or_exit(checked)
    check_routing_or_exit(settings)
    check_privacy_or_exit(settings)
    check_data_dir_or_exit(settings)
    # what serve refuses in the data dir: a damaged log or stored responses' file
    check_request_log_or_exit(settings, existing_only=True)
    check_stored_responses_or_exit(settings)
    refuse_model_file_problems(
        settings,
        [
            *local_engine_problems(settings),
            *model_file_problems(settings),
            *adapter_file_problems(settings),
        ],
    )
    check_api_keys_or_exit(settings)
    warn(config_warnings(settings))
    if as_json:
        typer.echo(json.dumps(_shown(settings), indent=2))
        return
    # the variables too: "<built-in defaults>: OK" above models SMALLFIRST__MODELS had set
    overridden = "".join(f" + {name}" for name in settings.environment_overrides)
    typer.echo(f"{checked or BUILT_IN}{overridden}: OK")
    for model in settings.models:
        typer.echo(f"  {model.id:<24} tier={model.tier:<7} backend={model.backend}")


@app.command("show")
def show(
    config: Path | None = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the configuration in effect, defaults included (API keys as their hashes)."""
    # no checks of model files or the data dir, as `config check` makes: a config written
    # for another machine can be read here too
    shown = _shown(settings_or_exit(config))
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        typer.echo(yaml.safe_dump(shown, sort_keys=False), nl=False)


def _path_from_env() -> Path | None:
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def _shown(settings: Settings) -> dict[str, Any]:
    """The resolved config, API keys as their hashes and a password in a `base_url` masked:
    a plain key in the file was printed as it was (whatever reads this output need not see
    it)."""
    from smallfirst.server.auth import hashed

    shown: dict[str, Any] = json.loads(settings.model_dump_json())
    shown["server"]["api_keys"] = hashed(settings.server.api_keys)
    for model in shown["models"]:
        if "base_url" in model:
            model["base_url"] = _without_password(model["base_url"])
    return shown


def _without_password(url: str) -> str:
    """`https://user:secret@host/v1` -> `https://user:***@host/v1`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
