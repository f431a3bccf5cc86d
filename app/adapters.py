"""LoRA adapters loaded at run time (vLLM's ``/v1/load_lora_adapter``): models that exist while loaded.

An adapter is answered as a model of its own name, with its base model's limits and endpoint, and listed by
``/v1/models`` with its ``parent`` and ``root`` (its path), as vLLM lists it. Adapters are stored objects of
the shared state, so every worker and every instance on one Redis sees a load or an unload at once; a request
pays one read for them only when it names a model that is not configured.
"""

from __future__ import annotations

import dataclasses
import time

from app.config import ModelSpec

KIND = "lora_adapter"
OWNER = "vllm"


def find(shared, name: str, settings) -> ModelSpec | None:
    """The loaded adapter ``name`` as a model, or None."""
    stored = shared.get_object(KIND, name)
    return None if stored is None else as_model(stored, settings)


def loaded(shared, settings) -> list[ModelSpec]:
    """Every loaded adapter, in the order they were loaded."""
    stored, _ = shared.list_objects(KIND, newest_first=False, after=None, limit=10000)
    return [model for model in (as_model(s, settings) for s in stored) if model is not None]


def load(shared, name: str, path: str, parent: str, created: int | None = None) -> None:
    record = {"name": name, "path": path, "parent": parent, "created": created or int(time.time())}
    shared.put_object(KIND, name, record)


def unload(shared, name: str) -> bool:
    return shared.delete_object(KIND, name)


def as_model(stored: dict, settings) -> ModelSpec | None:
    base = settings.model(stored["parent"])
    if base is None:  # its base model is no longer configured (a restart with other models)
        return None
    return dataclasses.replace(
        base,
        id=stored["name"],
        snapshot="",
        owned_by=OWNER,
        created=stored["created"],
        parent=base.id,
        root=stored["path"],
    )
