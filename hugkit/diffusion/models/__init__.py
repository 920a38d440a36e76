"""Diffusion model components (UNet, VAE) with diffusers' config fields and weight names."""
