import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.config import (
    AUTO_MODEL_ID,
    EMBEDDING_MODEL_IDS,
    RAG_MODEL_PREFIX,
    LlamaCppModel,
)
from smallfirst.config_file import load_settings
from smallfirst.errors import ConfigError, Unauthorized
from smallfirst.server.auth import KeyRing

REMOTE_MODEL = """models:
  - id: remote
    tier: onprem
    backend: openai_compat
    base_url: http://127.0.0.1:9/v1
    api_key_env: {key_variable}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smallfirst.yaml"
    path.write_text(text)
    return path


def test_builtin_default_serves_the_bundled_model() -> None:
    settings = load_settings(None, env={})
    assert [m.id for m in settings.models] == ["smollm2-135m"]
    model = settings.models[0]
    assert isinstance(model, LlamaCppModel)
    assert model.path == "bundled:smollm2"
    assert model.tier == "edge"
    assert settings.server.host == "127.0.0.1"


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  prot: 9000\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(path) in str(error.value)
    assert "server.prot: unknown key" in str(error.value)


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n  - {id: m, tier: moon, backend: fake}\n",
    )
    with pytest.raises(ConfigError, match=rf"^{path}: models\.0\.tier: Input should be 'edge'"):
        load_settings(path, env={})


def test_more_slots_than_a_batch_holds_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {id: m, tier: edge, parallel: 8, batch_size: 4}\n")
    with pytest.raises(ConfigError, match=r"models\.0\.parallel: 8 exceeds batch_size \(4\)"):
        load_settings(path, env={})


def test_cloud_tier_and_env_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - id: smollm2-135m
    tier: edge
  - id: gpt-4o-mini
    tier: cloud
    backend: openai_compat
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    input_cost_per_1m: 0.15
    output_cost_per_1m: 0.60
""",
    )
    settings = load_settings(path, env={"SMALLFIRST__SERVER__PORT": "9001"})
    assert settings.server.port == 9001
    assert [m.tier for m in settings.models] == ["edge", "cloud"]


def test_a_fallback_chain_given_for_one_tier_keeps_the_others_defaults(tmp_path: Path) -> None:
    """`fallbacks: {cloud: [edge]}`, or the same from the environment, replaced the whole
    mapping: on-prem silently lost its fallback to edge."""
    path = write(tmp_path, "routing:\n  fallbacks: {cloud: [edge]}\n")
    from_file = load_settings(path, env={}).routing.fallbacks
    from_env = load_settings(env={"SMALLFIRST__ROUTING__FALLBACKS__CLOUD": "[edge]"})
    expected = {"cloud": ["edge"], "onprem": ["edge"], "edge": []}
    assert from_file == from_env.routing.fallbacks == expected
    emptied = write(tmp_path, "routing:\n  fallbacks: {onprem: []}\n")
    assert load_settings(emptied, env={}).routing.fallbacks["onprem"] == []


def test_duplicate_model_ids_are_rejected_naming_each_later_one(tmp_path: Path) -> None:
    models = "".join(f"  - {{id: {i}, tier: edge}}\n" for i in ["a", "b", "a", "a"])
    path = write(tmp_path, "models:\n" + models)
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == (
        f'{path}: models.2.id: duplicate id "a" (also models.0)\n'
        f'{path}: models.3.id: duplicate id "a" (also models.0)'
    )


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "models: [\n"), env={})
    # both were tracebacks
    with pytest.raises(ConfigError, match="not valid YAML: nested too deeply to read"):
        load_settings(write(tmp_path, "server: " + "[" * 2000 + "]" * 2000), env={})
    with pytest.raises(ConfigError, match="not valid YAML: Exceeds the limit"):
        load_settings(write(tmp_path, "server:\n  port: " + "9" * 5000), env={})


def test_a_yaml_error_is_one_line_naming_the_file_and_the_line(tmp_path: Path) -> None:
    """PyYAML's message took six lines, quoted the text and named it "<unicode string>"."""
    path = write(tmp_path, "models:\n  - id: a\n    tier: edge\n   bad: [\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == (
        f"{path}: not valid YAML: line 4, column 4: expected <block end>, but found"
        " '<block mapping start>' (while parsing a block collection from line 2)"
    )


def test_an_infinite_or_nan_number_is_refused_naming_its_key(tmp_path: Path) -> None:
    """`.inf` (or `1e400`, a string to YAML) passed `ge=0`: `models --json` printed the
    price as `Infinity`, which is not JSON."""
    models = "models:\n  - {id: m, tier: edge, input_cost_per_1m: 1e400}\n"
    path = write(tmp_path, models + "routing: {threshold: .nan}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value).splitlines() == [
        f"{path}: routing.threshold: Input should be a finite number",
        f"{path}: models.0.input_cost_per_1m: Input should be a finite number",
    ]


def test_the_cascade_takes_minus_infinity_as_calibrate_cascade_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`router calibrate-cascade` writes `min_mean_logprob: -.inf` (never escalate), and
    `config check --json` shows it as JSON can hold it (it printed `-Infinity`)."""
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(tmp_path / "data"))
    path = write(tmp_path, "routing: {cascade: {min_mean_logprob: -.inf}}\n")
    result = CliRunner().invoke(app, ["config", "check", "--json", str(path)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(name))
    assert shown["routing"]["cascade"]["min_mean_logprob"] == "-Infinity"
    resolved = tmp_path / "resolved.json"  # JSON is YAML: the output reads as a config
    resolved.write_text(result.stdout)
    assert load_settings(resolved, env={}).routing == load_settings(path, env={}).routing
    nan = write(tmp_path, "routing: {cascade: {min_token_logprob: .nan}}\n")
    with pytest.raises(ConfigError, match=r"min_token_logprob: NaN is not a logprob"):
        load_settings(nan, env={})  # it read "less than or equal to 0"


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://", "not a URL: it names no host"),
        ("http://127.0.0.1:port/v1", "not a URL: Port could not be cast to integer value"),
        ("http://[::1/v1", "not a URL: Invalid IPv6 URL"),
        (
            "https://api.example.com/v1/chat/completions/",
            r"names the endpoint /chat/completions: give the base URL \(https://api.example.com/v1\)",
        ),
    ],
)
def test_a_base_url_that_names_no_address_is_refused(
    tmp_path: Path, base_url: str, problem: str
) -> None:
    """They passed the check, and every request to the model was a 502."""
    remote = f"{{id: r, tier: cloud, backend: openai_compat, base_url: '{base_url}'}}"
    with pytest.raises(ConfigError, match=rf": models\.0\.base_url: {problem}"):
        load_settings(write(tmp_path, f"models:\n  - {remote}\n"), env={})


def test_config_check_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "check", str(write(tmp_path, "log_prompts: true\n"))])
    assert ok.exit_code == 0, ok.output
    assert "smollm2-135m" in ok.output
    bad = runner.invoke(app, ["config", "check", str(write(tmp_path, "nonsense: 1\n"))])
    assert bad.exit_code == 2
    assert "nonsense: unknown key" in bad.output
    # as every other command names it (it was "No such option: --config")
    named = runner.invoke(app, ["config", "check", "--config", str(tmp_path / "smallfirst.yaml")])
    assert named.exit_code == 2
    assert "nonsense: unknown key" in named.output


def test_config_check_names_the_file_it_was_given_with_config(tmp_path: Path) -> None:
    """It said "<built-in defaults>: OK" after checking the file named with -c."""
    good = write(tmp_path, "log_prompts: true\n")
    checked = CliRunner().invoke(app, ["config", "check", "-c", str(good)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(f"{good}: OK")


def test_config_check_config_option_wins_over_the_environment(tmp_path: Path) -> None:
    """As in every other command; with SMALLFIRST_CONFIG exported it was "two config files
    given" (the variable filled the FILE argument)."""
    good = write(tmp_path, "log_prompts: true\n")
    env = {"SMALLFIRST_CONFIG": str(tmp_path / "other.yaml")}
    checked = CliRunner().invoke(app, ["config", "check", "-c", str(good)], env=env)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(f"{good}: OK")
    from_env = CliRunner().invoke(app, ["config", "check"], env={"SMALLFIRST_CONFIG": str(good)})
    assert from_env.output.startswith(f"{good}: OK")
    other = tmp_path / "other.yaml"
    other.write_text("log_prompts: false\n")
    both = CliRunner().invoke(app, ["config", "check", str(other), "-c", str(good)])
    assert both.exit_code == 2
    assert both.stderr == f"Error: two config files given ({other} and --config {good}): give one\n"


def test_config_check_names_the_variables_that_set_keys(tmp_path: Path) -> None:
    """It said "<built-in defaults>: OK" above the models SMALLFIRST__MODELS had set."""
    env = {
        "SMALLFIRST__MODELS": "[{id: other, tier: edge}]",
        "SMALLFIRST__SERVER__PORT": "9001",
        "SMALLFIRST__DATA_DIR": str(tmp_path),
    }
    checked = CliRunner().invoke(app, ["config", "check"], env=env)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(
        "<built-in defaults> + SMALLFIRST__DATA_DIR + SMALLFIRST__MODELS"
        " + SMALLFIRST__SERVER__PORT: OK\n  other "
    )


def test_config_check_finds_what_would_fail_only_at_serve_time(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = "models:\n  - {id: big-local, tier: onprem, path: /nowhere/model.gguf}\n"
    no_file = runner.invoke(app, ["config", "check", str(write(tmp_path, missing))])
    assert no_file.exit_code == 1
    assert "models.0.path (big-local): model file not found: /nowhere/model.gguf" in no_file.output
    knob = "routing: {router: rules, min_quality: 0.9}\n"
    no_calibration = runner.invoke(app, ["config", "check", str(write(tmp_path, knob))])
    assert no_calibration.exit_code == 1
    assert "min_quality needs a learned router artifact" in no_calibration.output


def test_an_env_override_error_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad_value:
        load_settings(None, env={"SMALLFIRST__SERVER__PORT": "abc"})
    assert str(bad_value.value) == (
        "environment SMALLFIRST__SERVER__PORT: server.port: Input should be a valid integer,"
        " unable to parse string as an integer"
    )
    with pytest.raises(ConfigError, match="environment SMALLFIRST__SERVER__PORT: not a YAML"):
        load_settings(None, env={"SMALLFIRST__SERVER__PORT": "["})
    path = write(tmp_path, "server:\n  prot: 1\n")
    with pytest.raises(ConfigError) as mixed:
        load_settings(path, env={"SMALLFIRST__SERVER__PORT": "abc"})
    assert str(mixed.value).splitlines() == [
        "environment SMALLFIRST__SERVER__PORT: server.port: Input should be a valid integer,"
        " unable to parse string as an integer",
        f"{path}: server.prot: unknown key",
    ]


def test_config_check_names_an_unreadable_file_and_a_bad_env_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    directory = runner.invoke(app, ["config", "check", str(tmp_path)])
    assert directory.exit_code == 2
    assert directory.output == f"Error: cannot read {tmp_path}: Is a directory\n"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    not_text = runner.invoke(app, ["config", "check", str(binary)])
    assert not_text.exit_code == 2
    assert not_text.output == f"Error: {binary}: not UTF-8 text (byte 0)\n"
    monkeypatch.setenv("SMALLFIRST__SERVER__PORT", "[")
    bad_env = runner.invoke(app, ["config", "check"])
    assert bad_env.exit_code == 2
    assert bad_env.output.startswith("Error: environment SMALLFIRST__SERVER__PORT: not a YAML")


def test_config_check_json_runs_the_same_checks(tmp_path: Path) -> None:
    missing = "models:\n  - {id: big-local, tier: onprem, path: /nowhere/model.gguf}\n"
    result = CliRunner().invoke(app, ["config", "check", str(write(tmp_path, missing)), "--json"])
    assert result.exit_code == 1
    assert "model file not found: /nowhere/model.gguf" in result.stderr
    assert result.stdout == ""


def test_a_typo_in_an_env_section_name_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "log_prompts: true\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={"SMALLFIRST__SERVR__PORT": "1"})
    assert str(error.value) == "environment SMALLFIRST__SERVR__PORT: servr: unknown key"


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("SMALLFIRST_DATA_DIR", "SMALLFIRST__DATA_DIR"),
        ("SMALLFIRST_SERVER_PORT", "SMALLFIRST__SERVER__PORT"),
    ],
)
def test_a_setting_with_one_underscore_is_refused_with_its_spelling(
    variable: str, meant: str
) -> None:
    """It was ignored without a word (the data went to the default data dir)."""
    with pytest.raises(ConfigError) as error:
        load_settings(env={variable: "/tmp/elsewhere"})
    assert str(error.value).endswith(f"two underscores: {meant}")


def test_other_names_with_one_underscore_are_left_alone() -> None:
    """Such as an upstream's key named in `api_key_env`, or SMALLFIRST_CONFIG itself."""
    env = {"SMALLFIRST_CONFIG": "x", "SMALLFIRST_OPENAI_KEY": "sk-1", "SMALLFIRST_CACHE_DIR": "x"}
    assert load_settings(env=env).server.port == 8080


@pytest.mark.parametrize("variable", ["SMALLFIRST_LOCAL_API_KEY", "SMALLFIRST_SERVER_TOKEN"])
def test_a_name_that_starts_like_a_section_but_spells_no_setting_is_left_alone(
    tmp_path: Path, variable: str
) -> None:
    """It stopped every command: SMALLFIRST_LOCAL_API_KEY read as SMALLFIRST__LOCAL__API_KEY,
    which is no setting either, though an upstream's key was in it (`api_key_env`)."""
    path = write(tmp_path, REMOTE_MODEL.format(key_variable=variable))
    settings = load_settings(path, env={variable: "sk-local"})
    assert [m.id for m in settings.models] == ["remote"]


def test_a_setting_in_a_nested_section_is_refused_with_its_spelling() -> None:
    """It suggested SMALLFIRST__ROUTING__CASCADE_MAX_TOKENS, which is no setting."""
    with pytest.raises(ConfigError) as error:
        load_settings(env={"SMALLFIRST_ROUTING_CASCADE_MAX_TOKENS": "64"})
    assert str(error.value).endswith("two underscores: SMALLFIRST__ROUTING__CASCADE__MAX_TOKENS")


def test_a_key_given_twice_is_an_error_naming_it_the_file_and_the_lines(tmp_path: Path) -> None:
    twice = "models:\n  - {id: a, tier: edge}\nmodels:\n  - {id: b, tier: edge}\n"
    with pytest.raises(ConfigError) as top:
        load_settings(write(tmp_path, twice), env={})
    assert str(top.value) == (
        f"{tmp_path / 'smallfirst.yaml'}: duplicate key 'models' at line 3 (first at line 1)"
    )
    with pytest.raises(ConfigError, match=r"duplicate key 'port' at line 3 \(first at line 2\)"):
        load_settings(write(tmp_path, "server:\n  port: 1\n  port: 2\n"), env={})
    merged = "base: &b {port: 1}\nserver:\n  <<: *b\n  port: 2\n"  # a merge key may be overridden
    with pytest.raises(ConfigError, match=r"base: unknown key"):
        load_settings(write(tmp_path, merged), env={})


@pytest.mark.parametrize("entry", ["sha256:abc", "sha256:" + "g" * 64, "sha256:" + "a" * 65])
def test_a_hashed_api_key_that_is_not_a_whole_digest_is_refused(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path, f"server:\n  api_keys: [k1, '{entry}']\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value).startswith(f"{path}: server.api_keys.1:")
    assert "sha256: and 64 hex digits" in str(error.value)


def test_a_hashed_api_key_in_capitals_still_lets_its_client_in(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"secret").hexdigest().upper()
    config = f"server:\n  require_api_key: true\n  api_keys: ['sha256:{digest}']\n"
    keyring = KeyRing(load_settings(write(tmp_path, config), env={}).server)
    assert keyring.check("Bearer secret") == digest.lower()[:12]  # the log's key id
    with pytest.raises(Unauthorized):
        keyring.check("Bearer other")


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("", "an empty key"),
        (" k2 ", "spaces around it"),
        ("cl\u00e9", "not printable ASCII"),
        ("k\\tey", "not printable ASCII"),
    ],
)
def test_an_api_key_no_client_can_send_is_refused_without_showing_it(
    tmp_path: Path, entry: str, why: str
) -> None:
    """`config check` said OK, and the server required keys that refused every client (a
    client's header is read without the spaces around it, and clients send ASCII)."""
    path = write(tmp_path, f'server:\n  api_keys: [k1, "{entry}"]\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value).startswith(f"{path}: server.api_keys.1:")
    assert why in str(error.value)
    told = str(error.value).partition("server.api_keys.1:")[2]
    assert not entry.strip() or entry.strip() not in told


def test_a_hashed_api_key_in_the_environment_is_a_hash_as_in_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SMALLFIRST_API_KEYS=sha256:<digest> made the digest itself the key: the key it was
    the hash of was refused, and anyone who had the hash got in."""
    digest = hashlib.sha256(b"secret").hexdigest()
    monkeypatch.setenv("SMALLFIRST_API_KEYS", f"k1, sha256:{digest.upper()}")
    keyring = KeyRing(load_settings(env={"SMALLFIRST__SERVER__REQUIRE_API_KEY": "true"}).server)
    assert keyring.check("Bearer secret") == digest[:12]
    with pytest.raises(Unauthorized):
        keyring.check(f"Bearer sha256:{digest}")


def test_a_models_item_cannot_be_set_from_the_environment_and_says_so() -> None:
    """It said "models: Input should be a valid list"."""
    with pytest.raises(ConfigError, match="the models are a list, not a section"):
        load_settings(env={"SMALLFIRST__MODELS__0__CONTEXT_LENGTH": "10"})


@pytest.mark.parametrize(
    ("model_id", "why"),
    [
        ("auto", "it asks the router to choose a model"),
        ("all-minilm-l6-v2", "it names the built-in embedding model"),
        ("text-embedding-local", "it names the built-in embedding model"),
        ("rag/notes", "ids starting with rag/ name RAG collections"),
    ],
)
def test_a_model_id_the_server_gives_another_meaning_is_refused(
    tmp_path: Path, model_id: str, why: str
) -> None:
    """Served, /v1/models listed `auto` twice and `rag/notes` could never be reached."""
    path = write(
        tmp_path, f"models:\n  - {{id: m, tier: edge}}\n  - {{id: '{model_id}', tier: edge}}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == f'{path}: models.1.id: "{model_id}" is reserved: {why}'


def test_the_reserved_ids_are_the_names_the_server_reads() -> None:
    from smallfirst import embed
    from smallfirst.rag_step import rag_collection
    from smallfirst.routing_step import AUTO_MODEL

    assert AUTO_MODEL_ID == AUTO_MODEL
    assert embed.MODEL_ID in EMBEDDING_MODEL_IDS
    assert rag_collection(RAG_MODEL_PREFIX + "notes") == "notes"


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            "models:\n  - {id: a, tier: edge, contxt_length: 100}\n",
            "models.0.contxt_length: unknown key",
        ),
        (
            "models:\n  - {id: gpt, tier: cloud, base_url: 'https://api.openai.com/v1'}\n",
            "models.0.base_url: unknown key for backend llamacpp (the default); base_url needs"
            " backend: openai_compat",
        ),
        (
            "models:\n  - {id: gpt, tier: cloud, backend: openai_compat, base_url: 'http://x',"
            " path: m.gguf}\n",
            "models.0.path: unknown key for backend openai_compat; path needs backend: llamacpp",
        ),
        (
            "models:\n  - {id: a, tier: edge, backend: llama.cpp}\n",
            'models.0.backend: unknown backend "llama.cpp" (backends: llamacpp, openai_compat,'
            " fake)",
        ),
        (
            "default_model: nope\nmodels:\n  - {id: a, tier: edge}\n",
            'default_model: "nope" is not a configured model id (models: a)',
        ),
        ("models: []\n", "models: at least one model is required"),
    ],
)
def test_an_error_names_the_key_as_the_file_spells_it(
    tmp_path: Path, config: str, line: str
) -> None:
    """Not `models.0.llamacpp.contxt_length` (pydantic's union tag), nor `<top>: Value error,`."""
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == f"{path}: {line}"


def test_an_unknown_default_model_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(env={"SMALLFIRST__DEFAULT_MODEL": "nope"})
    assert str(error.value) == (
        "environment SMALLFIRST__DEFAULT_MODEL: default_model:"
        ' "nope" is not a configured model id (models: smollm2-135m)'
    )
