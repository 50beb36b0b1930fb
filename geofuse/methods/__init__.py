"""Built-in fusion methods. Every module in this package registers its methods on import; they are all
imported here (in alphabetical order, after ``pansharpening``, the first three methods), so adding a
method is adding a module: no list to edit."""

import importlib
import pkgutil

from . import pansharpening  # noqa: F401  (exp, gsa, mtf_glp_hpm first in the registry)

for _m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _m.startswith("_"):
        importlib.import_module(f"{__name__}.{_m}")
