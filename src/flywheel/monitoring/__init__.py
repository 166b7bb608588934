"""Watching the served model: reference profiles, drift and decay, the report and its gauges.

`profile` is computed once per registered version from its training split; `drift` compares a
window of the inference log with it; `live` joins delayed labels to logged predictions. No
Prefect here: the monitoring flow, the CLI and the exporter all call these functions.
"""
