"""The steps, declared once, and the thin I/O layer that both drivers (DVC, Prefect) call."""
