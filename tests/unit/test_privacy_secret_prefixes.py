"""Keys found by the prefix and shape their services document (GitLab, npm, PyPI, SendGrid,
Twilio, Shopify, Docker Hub, DigitalOcean, Slack app tokens, HashiCorp Vault), Azure storage
account keys and mysql's "-p" password; hashes, identifiers and prefixes alone stay clean."""

from __future__ import annotations

import pytest

from smallfirst.privacy.secrets import find_secrets
from tests.helpers import matched_texts

_BASE62 = "Zq8Lm3Np7Rt2Vx6Bc1Dk9Fh4Gj5Hw0Ys"  # 32 characters
_HEX = "3f9a0c7e51b2d8646ea1f03c9b7d2e58"  # 32 lower-case hex digits
_BASE64 = "Qm9vbGVhbi8rU3Rvcm0xMjM0NTY3ODkwYWJj"  # 36 characters


def _secrets(text: str) -> list[str]:
    return matched_texts(find_secrets, text)


KEYS = [
    "glpat-" + _BASE62[:20],
    "glpat-" + _BASE62[:27] + ".01" + "0a1b2c3",  # routable form
    "gldt-" + _BASE62[4:24],
    "glptt-" + _HEX + "0a1b2c3d",
    "glrt-" + "t1_" + _BASE62[:27],
    "glrtr-" + _BASE62[:20],
    "glcbt-" + "64_" + _BASE62[:20],
    "GR1348941" + _BASE62[:20],
    "npm_" + _BASE62 + "Ab12",
    "pypi-AgEIcHlwaS5vcmc" + _BASE62 * 3,
    "pypi-AgENdGVzdC5weXBpLm9yZw" + _BASE62 * 2,
    "SG." + _BASE62[:22] + "." + _BASE62 + _BASE62[:11],
    "SK" + _HEX,
    "shpat_" + _HEX,
    "shpss_" + _HEX.upper(),
    "shpca_" + _HEX,
    "dckr_pat_" + _BASE62[:27],
    "dop_v1_" + _HEX * 2,
    "doo_v1_" + _HEX * 2,
    "xapp-1-A0" + "12BCDEF34" + "-" + "4567890123456" + "-" + _HEX * 2,
    "hvs." + _BASE62 * 3,
    "sk-ant-api03-" + _BASE62 * 3,
]


@pytest.mark.parametrize("key", KEYS)
def test_keys_by_their_documented_prefix_in_prose(key: str) -> None:
    assert _secrets(f"here it is: {key} - keep it safe") == [key]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mysql -h db.local -u app -pW1nter!2024 orders", "W1nter!2024"),
        ("mysqldump -uroot -p'Tr1cky pass' shop > dump.sql", "Tr1cky pass"),
        (
            "DefaultEndpointsProtocol=https;AccountName=files01;AccountKey="
            + _BASE64 * 2
            + _BASE64[:14]
            + "==;EndpointSuffix=core.windows.net",
            _BASE64 * 2 + _BASE64[:14] + "==",
        ),
    ],
)
def test_credentials_by_their_command_or_connection_string(text: str, secret: str) -> None:
    assert _secrets(text) == [secret]


@pytest.mark.parametrize(
    "text",
    [
        "sha256 " + _HEX * 2,
        "md5 " + _HEX + " and SHA-1 " + _HEX + "0a1b2c3d",
        "SKU SK-4471-XL is back",
        "tracking id SK" + _HEX[:20],
        "SK" + _HEX.upper() + " looks like a key but Twilio writes lower case",
        "npm_config_registry and npm_package_json are npm variables",
        "pip install --index-url pypi-mirror",
        "SG.12 of the spec",
        "tokens start with glpat- and then 20 characters",
        "docker tag dckr_pat_demo",
        "shpat_1234 is a placeholder",
        "dop_v1_ tokens are 71 characters long",
        "mysql -p -u root shop",  # a lone -p asks for the password
        "mysql -P 3306 -h db shop",  # -P is the port
        "mysql -u root -p$MYSQL_PWD shop",
        "AccountKey=<storage-key>;EndpointSuffix=core.windows.net",
        "hvs.append(value) and hvs.extend_with_long_method_names_here(x)",
    ],
)
def test_hashes_identifiers_and_bare_prefixes_are_no_keys(text: str) -> None:
    assert _secrets(text) == []
