"""The command line: the only package that knows typer.

``render`` is the only module that imports rich.
"""
