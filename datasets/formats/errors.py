"""Errors raised by the dataset readers and writers."""

from __future__ import annotations


class FormatError(ValueError):
    """Malformed input file. The message is one line naming the file, the line or record, and the reason.

    Example: ``annotation_val.odgt:17: gtbox 3 has no 'fbox'``.
    """
