"""Typer apps: parse, call a service, render. Nothing else."""
