"""`config check` finds what would fail only when serving, and `serve` refuses it (or warns)
before it listens: model and adapter files, the data folder, keys, memory, CLI flags."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from smallfirst.cli import app

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Checks probe the data folder: a fresh one, not the user's."""
    folder = tmp_path / "data"
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(folder))
    return folder


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smallfirst.yaml"
    path.write_text(text)
    return path


def check(*args: str) -> Result:
    return CliRunner().invoke(app, ["config", "check", *args])


def gguf(path: Path, size: int = 64) -> Path:
    """A file that starts like a GGUF model (sparse: a large one costs no disk)."""
    with path.open("wb") as file:
        file.write(b"GGUF")
        file.truncate(size)
    return path


def local_model(**fields: str) -> str:
    return (
        "models:\n  - {id: m, tier: edge, "
        + ", ".join(f"{k}: {v}" for k, v in fields.items())
        + "}\n"
    )


@pytest.mark.parametrize(
    ("key", "file", "problem"),
    [
        ("lora_path", None, "LoRA adapter file not found"),
        ("lora_path", b"not an adapter\n", "not a GGUF file"),
        ("path", b"not a model\n", "not a GGUF file"),
    ],
)
def test_an_adapter_or_model_that_is_not_a_gguf_file_is_refused(
    tmp_path: Path, key: str, file: bytes | None, problem: str
) -> None:
    target = tmp_path / "x.gguf"
    if file is not None:
        target.write_bytes(file)
    config = write(tmp_path, local_model(**{key: str(target)}))
    result = check(str(config))
    assert result.exit_code == 1
    assert result.output == f"Error: {config}: models.0.{key} (m): {problem}: {target}\n"


@pytest.mark.parametrize(
    ("key", "what"), [("path", "model file"), ("lora_path", "LoRA adapter file")]
)
def test_a_folder_given_as_a_file_is_named_a_folder(tmp_path: Path, key: str, what: str) -> None:
    """It was "model file not found" for a folder that is there."""
    (tmp_path / "models").mkdir()
    config = write(tmp_path, local_model(**{key: "models/"}))
    result = check(str(config))
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {config}: models.0.{key} (m): {what} is a folder, not a GGUF file:"
        f" {tmp_path / 'models'}\n",
    )


def test_gguf_files_and_the_bundled_model_pass(tmp_path: Path) -> None:
    model, adapter = gguf(tmp_path / "model.gguf"), gguf(tmp_path / "adapter.gguf")
    result = check(str(write(tmp_path, local_model(path=str(model), lora_path=str(adapter)))))
    assert result.exit_code == 0, result.output
    assert check().exit_code == 0  # bundled:smollm2


def test_an_adapter_path_from_the_home_folder_is_expanded_as_a_model_path_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lora_path: ~/adapter.gguf` was refused as not found (and llama.cpp reads no `~`)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    model, adapter = gguf(tmp_path / "model.gguf"), gguf(tmp_path / "adapter.gguf")
    config = write(tmp_path, local_model(path="~/model.gguf", lora_path="~/adapter.gguf"))
    result = check(str(config), "--json")
    assert result.exit_code == 0, result.output
    [checked] = json.loads(result.stdout)["models"]
    assert (checked["path"], checked["lora_path"]) == ("~/model.gguf", str(adapter))
    assert model.is_file()


def test_serve_refuses_a_bad_adapter_and_warns_of_a_bad_model_file(
    tmp_path: Path, served: list[Any]
) -> None:
    text = tmp_path / "x.gguf"
    text.write_text("not GGUF\n")
    adapter = write(tmp_path, local_model(lora_path=str(text)))
    refused = CliRunner().invoke(app, ["serve", "--config", str(adapter)])
    assert refused.exit_code == 1
    assert refused.output == f"Error: {adapter}: models.0.lora_path (m): not a GGUF file: {text}\n"
    assert served == []
    model = write(tmp_path, local_model(path=str(text)))
    warned = CliRunner().invoke(app, ["serve", "--config", str(model)])
    assert warned.exit_code == 0, warned.output
    assert warned.stderr == f"warning: models.0.path (m): not a GGUF file: {text}\n"
    assert len(served) == 1


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_a_data_dir_that_cannot_be_written_is_refused_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: list[Any],
    command: list[str],
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(a_file))
    from_env = CliRunner().invoke(app, command)
    assert from_env.exit_code == 1
    assert from_env.output == (
        f"Error: environment SMALLFIRST__DATA_DIR: data_dir: cannot write {a_file}:"
        " it is a file, not a directory\n"
    )
    monkeypatch.delenv("SMALLFIRST__DATA_DIR")
    config = write(tmp_path, "data_dir: /proc/smallfirst\n")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(config))  # as `serve`, `config check` reads it
    from_file = CliRunner().invoke(app, command)
    assert from_file.exit_code == 1
    assert from_file.output.startswith(
        f"Error: {config}: data_dir: cannot write /proc/smallfirst: cannot create files in /proc"
    )
    assert served == []
    assert a_file.read_text() == "keep me"


def test_config_check_reads_the_file_named_by_smallfirst_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, "models:\n  - {id: from-env, tier: edge, backend: fake}\n")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(config))
    result = check()
    assert result.exit_code == 0, result.output
    first_line, models = result.output.split(": OK\n", 1)
    assert first_line.split(" + ")[0] == str(config)  # then the variables tests set, if any
    assert models.startswith("  from-env ")


REMOTE = """models:
  - {id: m, tier: edge, backend: fake}
  - id: gpt
    tier: cloud
    backend: openai_compat
    base_url: https://api.example.com/v1
    api_key_env: SMALLFIRST_TEST_UPSTREAM_KEY
"""


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_an_unset_api_key_variable_is_a_warning_naming_model_and_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: list[Any],
    command: list[str],
) -> None:
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(write(tmp_path, REMOTE)))
    monkeypatch.delenv("SMALLFIRST_TEST_UPSTREAM_KEY", raising=False)
    unset = CliRunner().invoke(app, command)
    assert unset.exit_code == 0, unset.output
    assert unset.stderr == (
        "warning: models.1.api_key_env (gpt): SMALLFIRST_TEST_UPSTREAM_KEY is not set here;"
        " requests to this model go without an API key\n"
    )
    assert len(served) == (command == ["serve"])  # serve still starts
    monkeypatch.setenv("SMALLFIRST_TEST_UPSTREAM_KEY", "sk-test")
    assert CliRunner().invoke(app, command).stderr == ""


def test_a_queue_size_on_a_remote_model_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMALLFIRST_TEST_UPSTREAM_KEY", "sk-test")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(write(tmp_path, REMOTE + "    queue_size: 4\n")))
    result = check()
    assert result.exit_code == 0, result.output
    assert result.stderr == (  # it was taken, and bounded nothing
        "warning: models.1.queue_size (gpt): a remote model has no queue of this size; its"
        " calls wait up to queue_timeout_s for one of its max_concurrency connections\n"
    )
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(write(tmp_path, REMOTE)))
    assert check().stderr == ""


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_a_budget_smaller_than_a_models_weights_is_a_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: list[Any],
    command: list[str],
) -> None:
    model = gguf(tmp_path / "big.gguf", size=100 * MB)
    config = "local: {memory_budget_mb: 64}\n" + local_model(path=str(model))
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(write(tmp_path, config)))
    over = CliRunner().invoke(app, command)
    assert over.exit_code == 0, over.output
    assert over.stderr == (
        "warning: models.0.path (m): its weights file (100 MB) is larger than"
        " local.memory_budget_mb (64 MB): it never preloads, and loading it unloads every"
        " other idle local model\n"
    )
    monkeypatch.setenv("SMALLFIRST__LOCAL__MEMORY_BUDGET_MB", "100")
    assert CliRunner().invoke(app, command).stderr == ""


def test_a_budget_that_holds_the_weights_but_not_the_key_value_cells_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model: 94 MB of weights, 720 MB of cells for 4 slots of 8,192 tokens (the
    server's own load log), which the pool counts too: it reloaded for every answer."""
    config = "local: {memory_budget_mb: 500}\n" + local_model(parallel="4")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(write(tmp_path, config)))
    over = check()
    assert over.exit_code == 0, over.output
    assert over.stderr == (
        "warning: models.0 (m): its weights (94 MB) and the key-value cells of 4 slot(s) of"
        " 8,192 tokens (720 MB) are more than local.memory_budget_mb (500 MB): it is unloaded"
        " after every answer and loaded again for the next; lower context_length or"
        " parallel, or raise the budget\n"
    )
    monkeypatch.setenv("SMALLFIRST__LOCAL__MEMORY_BUDGET_MB", "814")
    assert check().stderr == ""


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--log-level", "bogus", "'bogus' is not one of 'critical', 'error', 'warning', 'info',"),
        ("--port", "70000", "Input should be less than or equal to 65535"),
        ("--port", "-1", "Input should be greater than or equal to 0"),
    ],
)
def test_serve_refuses_a_log_level_or_port_uvicorn_cannot_use(
    served: list[Any], flag: str, value: str, problem: str
) -> None:
    result = CliRunner().invoke(app, ["serve", flag, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}'" in result.output
    assert problem in " ".join(result.output.replace("│", " ").split())
    assert served == []


@pytest.mark.parametrize("host", ["", " "])
def test_serve_refuses_an_empty_host(served: list[Any], host: str) -> None:
    """uvicorn bound every address for `--host ''` (with API keys set; without them the
    refusal read "binding  (not loopback) needs API keys")."""
    result = CliRunner().invoke(app, ["serve", "--host", host])
    assert result.exit_code == 2
    assert result.stderr == "Error: --host is empty: give an address (0.0.0.0 for every IPv4 one)\n"
    assert served == []


@pytest.mark.parametrize("host", ['""', "' '"])
def test_a_config_file_with_an_empty_host_is_refused(tmp_path: Path, host: str) -> None:
    config = write(tmp_path, f"server: {{host: {host}}}\n")
    result = check(str(config))
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {config}: server.host: an empty host: give an address (0.0.0.0 for every IPv4"
        " one)\n"
    )


def test_serve_passes_uvicorn_a_level_it_knows(served: list[Any]) -> None:
    result = CliRunner().invoke(app, ["serve", "--log-level", "WARNING", "--port", "8141"])
    assert result.exit_code == 0, result.output
    [(settings, log_level)] = served
    assert (settings.server.port, log_level) == (8141, "warning")


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        ("{router: /nonexistent/router}", "routing: unknown router '/nonexistent/router'"),
        ("{router: learned}", "routing: `learned` needs an artifact"),
        # the routers a config may name: the cascade was left out of the list
        ("{router: /casade}", "routing: unknown router '/casade': not one of cascade, length,"),
    ],
)
def test_a_routing_error_names_the_file(tmp_path: Path, routing: str, problem: str) -> None:
    config = write(tmp_path, f"routing: {routing}\n")
    result = check(str(config))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {config}: {problem}")


def test_a_routing_error_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It blamed "<built-in defaults>, environment SMALLFIRST__ROUTING__ROUTER": the router
    came from the variable alone."""
    monkeypatch.setenv("SMALLFIRST__ROUTING__ROUTER", "learned")
    result = check()
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: environment SMALLFIRST__ROUTING__ROUTER: routing: `learned` needs an artifact"
    )


def test_a_routing_error_names_where_each_of_its_settings_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router from the file, the quality target from a variable; a variable for another
    routing key is no part of it."""
    config = write(tmp_path, "routing: {router: rules}\n")
    monkeypatch.setenv("SMALLFIRST__ROUTING__MIN_QUALITY", "0.9")
    monkeypatch.setenv("SMALLFIRST__ROUTING__THRESHOLD", "0.4")
    result = check(str(config))
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: environment SMALLFIRST__ROUTING__MIN_QUALITY, {config}: routing:"
        " routing.min_quality needs a learned router artifact"
    )


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_api_keys_are_needed_beyond_loopback_by_check_as_by_serve(
    monkeypatch: pytest.MonkeyPatch, served: list[Any], command: list[str]
) -> None:
    """`config check` said OK to what `serve` refused to start with."""
    monkeypatch.setenv("SMALLFIRST__SERVER__HOST", "0.0.0.0")
    monkeypatch.delenv("SMALLFIRST_API_KEYS", raising=False)
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: binding 0.0.0.0 (not loopback) needs API keys: set SMALLFIRST_API_KEYS=key1,key2"
        " or server.api_keys in the config\n"
    )
    assert served == []
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "k1")
    assert CliRunner().invoke(app, command).exit_code == 0


@pytest.mark.parametrize("command", [["config", "check"], ["serve"], ["chat", "Hi"]])
def test_a_spacy_model_that_is_not_installed_is_refused_naming_key_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: list[Any], command: list[str]
) -> None:
    """It passed the check, and the server started, then failed every scanned request with
    a 500 (and `chat` with a traceback)."""
    config = write(tmp_path, "privacy: {spacy_model: xx_no_such_pipeline}\n")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(config))
    refused = CliRunner().invoke(app, command)
    assert (refused.exit_code, refused.output) == (
        1,
        f"Error: {config}: privacy.spacy_model: spaCy model 'xx_no_such_pipeline' is not"
        " installed: name an installed pipeline package or a pipeline folder\n",
    )
    assert served == []
    off = write(tmp_path, "privacy: {enabled: false, spacy_model: xx_no_such_pipeline}\n")
    assert check(str(off)).exit_code == 0


def test_require_api_key_without_a_key_is_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On loopback: not "binding 127.0.0.1 (not loopback)"."""
    monkeypatch.setenv("SMALLFIRST__SERVER__REQUIRE_API_KEY", "true")
    monkeypatch.delenv("SMALLFIRST_API_KEYS", raising=False)
    result = check()
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: server.require_api_key is true but no API key is set: set"
    )


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_api_keys_set_on_loopback_without_requiring_them_are_a_warning(
    monkeypatch: pytest.MonkeyPatch, served: list[Any], command: list[str]
) -> None:
    """They were not checked, without a word: a request with a wrong key was answered."""
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "k1")
    unchecked = CliRunner().invoke(app, command)
    assert unchecked.exit_code == 0, unchecked.output
    assert unchecked.stderr == (
        "warning: server.api_keys / SMALLFIRST_API_KEYS: keys are set but not checked on"
        " 127.0.0.1 (loopback); a request without one, or with a wrong one, is answered."
        " Set server.require_api_key: true to require them (false: this warning goes)\n"
    )
    for chosen in ("true", "false"):
        monkeypatch.setenv("SMALLFIRST__SERVER__REQUIRE_API_KEY", chosen)
        assert CliRunner().invoke(app, command).stderr == ""


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
@pytest.mark.parametrize(
    ("entry", "why"),
    [("sha256:abc", "sha256: and 64 hex digits"), ("cl\u00e9", "not printable ASCII")],
)
def test_a_key_in_the_environment_no_client_can_send_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, served: list[Any], command: list[str], entry: str, why: str
) -> None:
    """Read as `server.api_keys` entries are: a malformed hash or a key that is not ASCII
    matched no client, and the server started."""
    monkeypatch.setenv("SMALLFIRST__SERVER__HOST", "0.0.0.0")
    monkeypatch.setenv("SMALLFIRST_API_KEYS", f"k1, {entry}")
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: SMALLFIRST_API_KEYS, key 2: ")
    assert why in refused.output
    assert entry not in refused.output
    assert served == []


def test_config_check_json_shows_api_keys_as_their_hashes(tmp_path: Path) -> None:
    """QA: a plain key in the file was printed as it was."""
    config = write(tmp_path, "server:\n  api_keys: [plain-secret-key]\n")
    result = check(str(config), "--json")
    assert result.exit_code == 0, result.output
    assert "plain-secret-key" not in result.output
    digest = hashlib.sha256(b"plain-secret-key").hexdigest()
    assert json.loads(result.stdout)["server"]["api_keys"] == [f"sha256:{digest}"]


def test_relative_paths_in_a_config_file_are_read_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config in /etc/smallfirst naming `models/m.gguf` was looked for in the working
    directory, which a systemd unit sets to /: the model was not found."""
    folder = tmp_path / "etc"
    (folder / "models").mkdir(parents=True)
    gguf(folder / "models" / "m.gguf"), gguf(folder / "adapter.gguf")
    config = folder / "smallfirst.yaml"
    config.write_text(local_model(path="models/m.gguf", lora_path="adapter.gguf"))
    monkeypatch.chdir(tmp_path)
    result = check(str(config), "--json")
    assert result.exit_code == 0, result.output
    [checked] = json.loads(result.stdout)["models"]
    assert checked["path"] == str(folder / "models" / "m.gguf")
    assert checked["lora_path"] == str(folder / "adapter.gguf")


def test_names_home_and_absolute_paths_and_environment_values_are_not_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smallfirst.config_file import load_settings

    config = tmp_path / "etc" / "smallfirst.yaml"
    config.parent.mkdir()
    config.write_text(
        "data_dir: state\nrouting: {router: rules}\nmodels:\n"
        "  - {id: a, tier: edge, path: 'installed:qwen2.5-coder-1.5b', lora_path: ~/l.gguf}\n"
        "  - {id: b, tier: edge, path: /models/b.gguf}\n  - {id: c, tier: edge}\n"
    )
    settings = load_settings(config, env={})
    assert settings.data_dir == tmp_path / "etc" / "state"
    assert settings.routing.router == "rules"
    paths = [(m.path, m.lora_path) for m in settings.models]  # type: ignore[union-attr]
    home = str(Path("~/l.gguf").expanduser())
    assert paths == [
        ("installed:qwen2.5-coder-1.5b", home),
        ("/models/b.gguf", None),
        ("bundled:smollm2", None),
    ]
    from_env = load_settings(config, env={"SMALLFIRST__ROUTING__ROUTER": "artifacts/r1"})
    assert from_env.routing.router == "artifacts/r1"
    config.write_text("routing: {router: artifacts/r1}\n")
    assert load_settings(config, env={}).routing.router == str(tmp_path / "etc/artifacts/r1")
