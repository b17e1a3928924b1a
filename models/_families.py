"""Imports every family file so that its builders register (order = `archstat list` order)."""
from archstat.models import alexnet  # noqa: F401
from archstat.models import zfnet  # noqa: F401
from archstat.models import vgg  # noqa: F401
from archstat.models import googlenet  # noqa: F401
from archstat.models import inception  # noqa: F401
from archstat.models import resnet  # noqa: F401
from archstat.models import preact_resnet  # noqa: F401
