"""Tracebacks for the log keep the types and the frames, never the messages."""

from __future__ import annotations

from coalition.logsafe import redacted_traceback

# Built at run time, so that no source line a traceback quotes contains it.
SECRET = "@".join(("ann.smith", "example.com"))


def _fail(value: str) -> None:
    raise ValueError(f"bad value {value}")


def test_the_message_is_withheld_and_the_frames_kept() -> None:
    try:
        _fail(SECRET)
    except ValueError as exc:
        text = redacted_traceback(exc)
    assert SECRET not in text
    assert "_fail" in text and "test_logsafe.py" in text and text.endswith("ValueError (message withheld)")


def test_causes_and_contexts_are_listed_without_their_messages() -> None:
    try:
        try:
            (SECRET + "\ud800").encode()
        except UnicodeEncodeError as inner:
            raise RuntimeError(f"while storing {SECRET}") from inner
    except RuntimeError as exc:
        text = redacted_traceback(exc)
    assert SECRET not in text
    assert "UnicodeEncodeError (message withheld)" in text and "RuntimeError (message withheld)" in text
    assert text.index("UnicodeEncodeError") < text.index("RuntimeError (message")


def test_a_library_exception_is_named_with_its_module() -> None:
    import json

    try:
        json.loads("{" + SECRET)
    except ValueError as exc:
        text = redacted_traceback(exc)
    assert SECRET not in text and text.endswith("json.decoder.JSONDecodeError (message withheld)")
