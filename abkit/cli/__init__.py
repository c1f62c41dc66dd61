"""The command line. The only package that knows typer; ``render`` is the only module that knows rich."""
