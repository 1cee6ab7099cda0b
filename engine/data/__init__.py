"""The data engine: event streams at rest (native, Parquet, CSV) and their merge."""
