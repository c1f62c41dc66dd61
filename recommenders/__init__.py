"""abkit's built-in recommenders, installed as the package ``abkit_recommenders``.

The folder is called ``recommenders/`` in the repository, but setuptools installs it under the
name ``abkit_recommenders`` (see ``[tool.setuptools] package-dir`` in ``pyproject.toml``), so it
can never clash with Microsoft's PyPI package ``recommenders``. The built-ins register through
the ``abkit.recommenders`` entry-point group, exactly as a third-party plug-in would.
"""
