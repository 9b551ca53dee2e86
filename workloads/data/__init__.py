"""Datasets (IDX reader, the MNIST loading chain, identification) and the offline assets."""
