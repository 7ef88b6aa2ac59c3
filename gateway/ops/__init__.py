"""Operations: Prometheus metrics, ``/v1/status`` and the status page ``/ops``."""
