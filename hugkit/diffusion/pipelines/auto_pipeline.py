"""AutoPipelineForText2Image / AutoPipelineForImage2Image / AutoPipelineForInpainting: the pipeline for a task.

A folder's ``model_index.json`` names the pipeline it was saved with (``_class_name``). That class belongs to a
family (SD 1.x/2.x, SDXL) with one pipeline per task, all built from the same components, so any folder of the
family loads for any task: an SD text-to-image folder becomes a StableDiffusionImg2ImgPipeline for
``AutoPipelineForImage2Image``. ``from_pipe`` does the same for a pipeline already loaded, sharing its components
(the weights are not loaded or copied again). Names and behaviour follow diffusers' auto_pipeline.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, ClassVar

from ...config import pop_hub_kwargs, read_json
from ..configuration import ConfigMixin
from ..pipeline_utils import MODEL_INDEX, PIPELINE_CLASSES, DiffusionPipeline, find_pipeline_class

# family -> pipeline class name for each task, as diffusers' AUTO_*_PIPELINES_MAPPING pair them
FAMILIES: dict[str, dict[str, str]] = {
    "stable-diffusion": {
        "text2image": "StableDiffusionPipeline",
        "image2image": "StableDiffusionImg2ImgPipeline",
        "inpaint": "StableDiffusionInpaintPipeline",
    },
    "stable-diffusion-xl": {
        "text2image": "StableDiffusionXLPipeline",
        "image2image": "StableDiffusionXLImg2ImgPipeline",
        "inpaint": "StableDiffusionXLInpaintPipeline",
    },
}


def task_pipeline_class(pipeline_class_name: str, task: str) -> type[DiffusionPipeline]:
    """hugkit's pipeline for ``task`` in the family of ``pipeline_class_name``."""
    family = next((name for name, tasks in FAMILIES.items() if pipeline_class_name in tasks.values()), None)
    if family is None:
        known = sorted(name for tasks in FAMILIES.values() for name in tasks.values())
        raise ValueError(
            f"AutoPipeline does not know the pipeline {pipeline_class_name!r}, so it cannot pick its {task} "
            f"counterpart. It knows: {', '.join(known)}. Load the folder with the pipeline class you want instead."
        )
    target = FAMILIES[family][task]
    if target not in PIPELINE_CLASSES:
        raise ValueError(
            f"The {task} pipeline of the {family} family is {target}, which hugkit does not have yet. "
            f"hugkit has: {', '.join(PIPELINE_CLASSES)}."
        )
    return find_pipeline_class(target)


def pipeline_from_pipe(target: type[DiffusionPipeline], pipeline: Any, overrides: dict[str, Any]) -> DiffusionPipeline:
    """A ``target`` pipeline from ``pipeline``'s components (the same objects) and settings; ``overrides``
    replace components (``scheduler=...``) or settings (``requires_safety_checker=False``)."""
    if not isinstance(pipeline, DiffusionPipeline):
        raise TypeError(f"from_pipe expects a loaded hugkit pipeline, got {type(pipeline).__name__}.")
    names = target._component_names()
    settings = [key for key in inspect.signature(target.__init__).parameters if key in target._config_parameters()]
    unknown = sorted(set(overrides) - set(names) - set(settings))
    if unknown:
        raise TypeError(
            f"{target.__name__} does not take {unknown}. Components: {', '.join(names)}; settings: {', '.join(settings)}."
        )
    source_config = dict(pipeline.config)
    source_components = pipeline.components
    init: dict[str, Any] = {}
    for name in names:
        init[name] = overrides[name] if name in overrides else source_components.get(name)
    missing = [name for name in names if init[name] is None and name not in target._optional_components]
    if missing:
        raise ValueError(f"{target.__name__} needs {missing}, which {type(pipeline).__name__} does not have: pass "
                         + ", ".join(f"{name}=..." for name in missing) + ".")
    for key in settings:
        if key in overrides:
            init[key] = overrides[key]
        elif key in source_config:
            init[key] = source_config[key]
        elif f"_{key}" in source_config:  # kept by an earlier from_pipe into a pipeline that did not take it
            init[key] = source_config[f"_{key}"]
    new = target(**init)
    # Settings the new pipeline does not take stay in its config under a leading "_" (not saved), so building
    # the first kind of pipeline back from this one restores them, as in diffusers.
    kept = {key if key.startswith("_") else f"_{key}": value for key, value in source_config.items()
            if key.lstrip("_") not in init and key not in new.config}
    if kept:
        new.register_to_config(**kept)
    return new


class _AutoPipeline(ConfigMixin):
    config_name: ClassVar[str] = MODEL_INDEX
    task: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"{type(self).__name__} is not built directly: use {type(self).__name__}.from_pretrained(folder_or_repo_id) "
            f"or {type(self).__name__}.from_pipe(pipeline)."
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_or_path: str | os.PathLike, **kwargs: Any) -> DiffusionPipeline:
        """Load the folder's components into the family's pipeline for this task. Keywords as for
        DiffusionPipeline.from_pretrained (torch_dtype, variant, components to use instead, hub options)."""
        from ...hub import resolve

        hub_kwargs = pop_hub_kwargs(kwargs)
        hub_kwargs.pop("subfolder", None)
        folder = resolve(pretrained_model_or_path, **hub_kwargs)
        if not (folder / MODEL_INDEX).is_file():
            raise FileNotFoundError(
                f"{folder} is not a diffusers pipeline folder: it has no {MODEL_INDEX}, which names the pipeline "
                f"{cls.__name__} picks its {cls.task} counterpart from. Pass the folder that holds model_index.json."
            )
        index = read_json(folder / MODEL_INDEX, what="pipeline index")
        target = task_pipeline_class(str(index.get("_class_name", "")), cls.task)
        return target.from_pretrained(folder, **kwargs)

    @classmethod
    def from_pipe(cls, pipeline: Any, **kwargs: Any) -> DiffusionPipeline:
        """The family's pipeline for this task, sharing ``pipeline``'s components; keywords replace components
        or settings."""
        if not isinstance(pipeline, DiffusionPipeline):
            raise TypeError(f"from_pipe expects a loaded hugkit pipeline, got {type(pipeline).__name__}.")
        return pipeline_from_pipe(task_pipeline_class(type(pipeline).__name__, cls.task), pipeline, kwargs)


class AutoPipelineForText2Image(_AutoPipeline):
    task = "text2image"


class AutoPipelineForImage2Image(_AutoPipeline):
    task = "image2image"


class AutoPipelineForInpainting(_AutoPipeline):
    task = "inpaint"
