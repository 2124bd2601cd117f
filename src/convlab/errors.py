"""The errors convlab raises on bad input.

Every message names what was wrong, the numbers involved, and a fix. The command line prints the
message on one line (plus the detail lines that follow it) and exits 2; library users catch
``ConvlabError`` or one of its subclasses.
"""

from __future__ import annotations


def did_you_mean(word: str, choices, n: int = 3) -> str:
    """' — did you mean 'a' or 'b'?' for the close matches of ``word`` among ``choices`` ('' if none)."""
    import difflib

    if len(str(word)) > 64:  # nothing in convlab's vocabularies is that long, and difflib would take its time
        return ""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return " — did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""


class ConvlabError(Exception):
    """Base class of every error convlab raises because of what the user gave it."""


class ShapeError(ConvlabError, ValueError):
    """A size, kernel, stride or layer that does not fit the tensor it is applied to."""


class SpecError(ConvlabError, ValueError):
    """A model spec that cannot be parsed: the position, the bad token and close matches."""


class DataError(ConvlabError):
    """A dataset that cannot be found, read or trusted."""


class UsageError(ConvlabError, ValueError):
    """A bad option value or combination (the command line exits 2)."""


class ZooError(ConvlabError, KeyError):
    """An unknown zoo model name or model option."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class TrainingError(ConvlabError):
    """Training could not go on (a non-finite loss, a model whose output does not fit the labels)."""


class ConversionError(ConvlabError, ValueError):
    """A model that cannot be converted as asked (e.g. an fc head that cannot become convolutions): which
    layer, and why."""


class WriteError(ConvlabError):
    """A file convlab could not write (a full disk, a read-only or missing folder, a planted link): which file,
    and why; the previous version of the file is left as it was."""


class RunError(ConvlabError):
    """A run directory, checkpoint or run file that cannot be used: which file, which key, what was expected."""
