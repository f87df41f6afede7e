"""Errors that speak to the person who must act: which file, which line, which rule."""

from __future__ import annotations


class BadInput(Exception):
    """A landed file that cannot be loaded as a whole. Retrying will not help; fix the source."""

    def __init__(self, source_file: str, rule: str, problem: str, line: int | None = None):
        self.source_file = source_file
        self.rule = rule
        self.problem = problem
        self.line = line
        where = f"{source_file}, line {line}" if line else source_file
        super().__init__(f"{where}: [{rule}] {problem}")


class GateBlocked(Exception):
    """The Great Expectations gate refused a batch; nothing of it was published to silver."""
