"""Apps and helpers the broker integration tests run, in-process or as subprocesses."""
