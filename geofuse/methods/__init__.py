from . import pansharpening  # noqa: F401  (registers the pansharpening methods)
