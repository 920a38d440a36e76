"""Image generation with diffusers' programming model: DiffusionPipeline, its components and schedulers."""
