"""Prefect only: flows, artifacts and the engine choice (plain functions or Prefect flow runs)."""
