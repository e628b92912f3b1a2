"""Characters that do not render: a reader of a text never sees them, a tokenizer does."""

from __future__ import annotations

import re

# Unicode 15.1 DerivedCoreProperties.txt, Default_Ignorable_Code_Point (Python's unicodedata
# has no such property; a few of these are not format characters, such as the Hangul fillers
# and the variation selectors, and some format characters are visible, such as U+0600):
# zero-width spaces and joiners, word joiner, soft hyphen, byte-order mark, bidirectional
# marks, variation selectors, tags.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
