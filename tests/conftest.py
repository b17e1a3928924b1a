import os

from hypothesis import HealthCheck, settings

# CI runs a few hundred examples in total; `HYPOTHESIS_PROFILE=thorough pytest -m slow` runs thousands.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
