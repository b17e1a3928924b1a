"""The one exception type that the command line turns into a one-line error and exit code 2."""


class ArchstatError(Exception):
    """A problem with the user's input (model name, shape, device, ...).

    The message is a single line that names the problem; the CLI prints it as
    ``archstat: error: <message>`` and exits with status 2, never a traceback.
    """


def is_oom(exc: BaseException) -> bool:
    """An out-of-memory error from PyTorch, on any device (the caller names the batch that failed)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def message_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when it has none (errors stay one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: how a failure inside the user's model is quoted."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
