"""Diffusion pipelines, one per file: text-to-image, image-to-image and inpainting for SD 1.x/2.x, and SDXL."""
