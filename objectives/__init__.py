"""Cost models for ML systems: catalogs, the analytical inference model, the serving simulator, accuracy proxy."""
