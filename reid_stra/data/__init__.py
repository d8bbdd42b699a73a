"""Datasets, image reading, transforms and samplers."""
