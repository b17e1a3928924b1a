"""archstat's model zoo: trainable PyTorch implementations of the lecture's architectures."""
from archstat.models._registry import (
    ModelInfo,
    Published,
    get_model,
    import_callable,
    list_models,
    model_info,
    register_model,
    resolve_model,
)

__all__ = ["ModelInfo", "Published", "get_model", "list_models", "model_info", "register_model", "resolve_model", "import_callable"]
