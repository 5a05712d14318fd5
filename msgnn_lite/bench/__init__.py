"""Benchmarks that print the figures the notebooks and issues quote.

    python -m msgnn_lite.bench <command> [options]      # python -m msgnn_lite.bench --help

Every module in this package that defines ``add_arguments(parser)`` and ``run(args)``
is a command named after the module.
"""
