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


REPAIR_COMMAND = "qala repair  (make repair)"


class LakeDamaged(Exception):
    """A data file the lake's catalog lists is missing or cannot be read. Retrying will not help:
    `qala repair` takes the file out of its table and loads its landed source files again."""

    def __init__(self, table: str, path: str, problem: str):
        self.table, self.path, self.problem = table, path, problem
        super().__init__(f"lake data file {path} of table {table} is {problem}; repair: {REPAIR_COMMAND} "
                         f"(qala lake-check lists every damaged file)")


class DiskFull(Exception):
    """No space left on the device a lake write needed. The lake transaction was rolled back;
    loading the same files again once there is space publishes them."""

    def __init__(self, where: str, free: int | None, total: int | None, detail: str, files: list[str] | None = None):
        self.where, self.free, self.total, self.detail, self.files = where, free, total, detail, list(files or [])
        space = (f"{free:,} bytes free of {total:,} on that filesystem now" if free is not None and total is not None
                 else "its filesystem could not be measured")
        named = f" while loading {', '.join(self.files)}" if self.files else ""
        super().__init__(f"no space left on device under {where}{named} ({space}; DuckDB said: {detail}); "
                         "the lake transaction was rolled back, nothing of it is visible; free space there and "
                         "load the same files again")

    def naming(self, files: list[str]) -> "DiskFull":
        return DiskFull(self.where, self.free, self.total, self.detail, files)
