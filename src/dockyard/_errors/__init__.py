"""Where dockyard's errors are defined: one module per category.

Import them from ``dockyard.exceptions``, their one public path (it also sets their
``__module__`` to it, so tracebacks, reprs and pickles name that path).
"""
