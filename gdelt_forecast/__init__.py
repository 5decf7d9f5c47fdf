"""The command line, above the library (``pipeline``) and the Prefect flows (``flows``)."""
