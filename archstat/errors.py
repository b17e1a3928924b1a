"""The one exception type that the command line turns into a one-line error and exit code 2."""


class ArchstatError(Exception):
    """A problem with the user's input (model name, shape, device, ...).

    The message is a single line that names the problem; the CLI prints it as
    ``archstat: error: <message>`` and exits with status 2, never a traceback.
    """
