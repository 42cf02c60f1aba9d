"""Why a frame being recorded was not learned from: the ``reason`` of ``record_skipped``.

The page says each reason in its own language (its ``skip_<reason>`` strings); the English
sentence here goes along for clients that have none.
"""

TOO_DARK = "too_dark"
TOO_BLURRY = "too_blurry"
FULL = "full"

SKIP_MESSAGES = {
    TOO_DARK: "Too dark to learn from: add light.",
    TOO_BLURRY: "Too blurred to learn from: hold still.",
    FULL: "This class is full: delete some examples to record more.",
}
SKIP_REASONS = tuple(SKIP_MESSAGES)
