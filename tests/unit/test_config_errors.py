"""A setting that cannot be read, from the config file or a `SMALLFIRST__` variable, is one
`Error:` line naming its key and where it came from, exit 2: the command was given input it
cannot use, as with a flag. Never a traceback, and never a value taken without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from smallfirst.cli import app


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smallfirst.yaml"
    path.write_text(text)
    return path


def check(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["config", "check", *args], env=env)


def test_serve_given_a_port_refuses_a_port_variable_it_cannot_read(served: list[Any]) -> None:
    """The flag would win over the variable, but the variable is a mistake every other
    command would trip on: it is named, on one line (it took two, exit 1)."""
    result = CliRunner().invoke(
        app, ["serve", "--port", "8080"], env={"SMALLFIRST__SERVER__PORT": "abc"}
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: environment SMALLFIRST__SERVER__PORT: server.port: Input should be a valid"
        " integer, unable to parse string as an integer\n"
    )
    assert served == []


def test_each_invalid_setting_is_a_line_naming_its_key_and_source(tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  prot: 1\nlog_prompts: maybe\n")
    result = check(str(config), env={"SMALLFIRST__SERVER__PORT": "99999"})
    assert result.exit_code == 2
    not_a_boolean = "Input should be a valid boolean, unable to interpret input"
    assert result.stderr.splitlines() == [
        "Error: environment SMALLFIRST__SERVER__PORT: server.port: Input should be less than"
        " or equal to 65535",
        f"Error: {config}: server.prot: unknown key",
        f"Error: {config}: log_prompts: {not_a_boolean}",
    ]


# `port: true` was port 1: pydantic reads true as 1
BOOLEANS_FOR_NUMBERS = [
    ("server: {port: true}\n", "server.port: should be a number, not true"),
    ("rag: {k: yes}\n", "rag.k: should be a number, not true"),  # YAML's yes is true
    (
        "models:\n  - {id: m, tier: edge, parallel: on}\n",
        "models.0.parallel: should be a number, not true",
    ),
    ("routing: {threshold: false}\n", "routing.threshold: should be a number, not false"),
    # the privacy section has its own schema: it took true as 1.0
    (
        "privacy: {score_threshold: true}\n",
        "privacy.score_threshold: should be a number, not true",
    ),
]
# A NUL in `data_dir` was a ValueError traceback; an empty one was the config file's folder
# without a word; a number said "not a valid path for <class 'pathlib.Path'>".
PATHS_THAT_NAME_NOTHING = [
    ('data_dir: "a\\0b"\n', "data_dir: holds a NUL character, which no path may"),
    ('data_dir: ""\n', "data_dir: empty: give a path"),
    ("data_dir: 5\n", "data_dir: should be a path"),
    ('models:\n  - {id: m, tier: edge, path: ""}\n', "models.0.path: empty: give a path"),
]


@pytest.mark.parametrize(("config", "line"), BOOLEANS_FOR_NUMBERS + PATHS_THAT_NAME_NOTHING)
def test_a_value_of_the_wrong_kind_is_refused_in_one_line(
    tmp_path: Path, config: str, line: str
) -> None:
    path = write(tmp_path, config)
    result = check(str(path))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: {line}\n"


def test_a_boolean_for_a_number_from_a_variable_is_refused() -> None:
    result = check(env={"SMALLFIRST__PRIVACY__SCORE_THRESHOLD": "true"})
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: environment SMALLFIRST__PRIVACY__SCORE_THRESHOLD: privacy.score_threshold:"
        " should be a number, not true\n"
    )


def test_every_section_of_the_settings_tree_shares_the_checks() -> None:
    """A room that owns its section's schema (privacy) had left out the check against
    booleans for numbers that the other sections have."""
    from smallfirst.config import Settings
    from smallfirst.config_section import ConfigSection

    sections: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Settings]
    while pending:
        section = pending.pop()
        sections.append(section)
        for field in section.model_fields.values():
            for kind in (field.annotation, *_inner_types(field.annotation)):
                if isinstance(kind, type) and issubclass(kind, BaseModel) and kind not in sections:
                    pending.append(kind)
    assert len(sections) > 10  # the walk reached the model backends and the nested sections
    assert [s.__name__ for s in sections if not issubclass(s, ConfigSection)] == []


def _inner_types(annotation: Any) -> list[Any]:
    """Every type an annotation is made of (`list[A | B] | None` -> list, A, B, None, ...)."""
    inner = list(get_args(annotation))
    return inner + [kind for part in inner for kind in _inner_types(part)]


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("SMALLFIRST__SERVER__HOST", "server.host: Input should be a valid string, not empty"),
        ("SMALLFIRST__DATA_DIR", "data_dir: should be a path, not empty"),
    ],
)
def test_an_empty_variable_is_said_to_be_empty(name: str, line: str) -> None:
    result = check(env={name: ""})
    assert result.exit_code == 2
    assert result.stderr == f"Error: environment {name}: {line}\n"


def test_a_variable_that_names_no_setting_is_refused() -> None:
    """`SMALLFIRST__=...` was left out without a word."""
    result = check(env={"SMALLFIRST__": "1"})
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: environment SMALLFIRST__: names no setting (SMALLFIRST__SECTION__KEY)\n"
    )


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("SMALLFIRST__SERVER__PORT__X", "port"),
        ("SMALLFIRST__LOG_PROMPTS__X", "log_prompts"),
        ("SMALLFIRST__ROUTING__CASCADE__MAX_TOKENS__X__Y", "max_tokens"),
    ],
)
def test_a_variable_that_goes_into_a_setting_says_it_is_no_section(name: str, setting: str) -> None:
    """`SMALLFIRST__SERVER__PORT__X=1` said "server.port: Input should be a valid integer"."""
    result = check(env={name: "1"})
    assert result.exit_code == 2
    its_variable = name[: name.index(setting.upper()) + len(setting)]
    assert result.stderr == (
        f"Error: environment {name}: {setting!r} is a setting, not a section"
        f" ({its_variable} sets it)\n"
    )


def test_variables_go_into_sections_and_mappings_whatever_their_keys_are_called() -> None:
    """A mapping's keys are its own: a collection called `private` is no `private` setting."""
    result = check(
        env={
            "SMALLFIRST__RAG__COLLECTIONS__PRIVATE__PRIVATE": "false",
            "SMALLFIRST__PRIVACY__TIER_POLICY__CLOUD": "block",
            "SMALLFIRST__ROUTING__CASCADE__MAX_TOKENS": "64",
        }
    )
    assert result.exit_code == 0, result.output


def test_a_config_file_that_cannot_be_read_is_bad_input(tmp_path: Path) -> None:
    missing = check(str(tmp_path / "nowhere.yaml"))
    assert missing.exit_code == 2
    assert missing.stderr == f"Error: {tmp_path / 'nowhere.yaml'}: file not found\n"
    folder = check(str(tmp_path))
    assert folder.exit_code == 2
    assert folder.stderr == f"Error: cannot read {tmp_path}: Is a directory\n"
