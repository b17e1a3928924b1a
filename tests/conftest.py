import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

# One BLAS thread for numpy/scipy (sklearn's probes, L-BFGS): read when OpenBLAS loads, so set before
# anything imports numpy; subprocesses inherit it.  The probes fit 25-1000 x ~200 problems, where a
# second thread only adds hand-offs: the transfer-table test spent 80 s of CPU with two threads on a
# busy 2-core machine and 15 s with one (`/usr/bin/time`, same test).  A value already set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Under pytest-xdist (`-n 2`: one worker per core) each worker and the processes it starts (CLI probes,
# torchrun ranks) default to one OpenMP thread, so two workers do not put four threads on two cores.
# Read when torch loads, hence here; a value already set is kept.  Tests still set their own counts.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# A measurement cache of this test process only (ceilings, time model: `archstat.profiling.cache`), so
# that no test reads the developer's ~/.cache/archstat and parallel workers never share one file.
# Tests that look at the cache still point ARCHSTAT_CACHE_DIR at their own tmp_path.
os.environ["ARCHSTAT_CACHE_DIR"] = tempfile.mkdtemp(prefix="archstat-test-cache-")
atexit.register(shutil.rmtree, os.environ["ARCHSTAT_CACHE_DIR"], ignore_errors=True)

import pytest  # noqa: E402
from _zoo_utils import one_thread  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# CI runs a few hundred examples in total; `HYPOTHESIS_PROFILE=thorough pytest -m slow` runs thousands.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Every test runs on one torch intra-op thread; the thread count is restored after it.

    The tests run small tensors (random nets, zoo models at small inputs), where two OpenMP
    threads on a busy 2-core machine wait on each other at every op: the 81 input-gradient
    backwards of GoogLeNet's receptive-field check at 3x96x96 took 106-150 s on two threads and
    8.8 s on one (load average 12).  What the tests check (shapes, counts, fields, equalities of
    numbers) does not depend on the thread count; a test that sets its own count still may.
    """
    with one_thread():
        yield


@pytest.fixture(scope="session")
def published_sections():
    """``report_published.run_checks(Analyses())``, computed once: the published-number tests read its
    verdicts and the freshness test renders it; neither changes it (about 2 s of analyses each time)."""
    from archstat.reporting.pubcheck import Analyses
    from archstat.reporting.report_published import run_checks

    return run_checks(Analyses())
