"""The canonical complaint (schema v1), case codes, errors and the normalizer contract:
the bottom layer every other package, normalizers included, may import."""
