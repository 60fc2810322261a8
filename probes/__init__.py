"""Probes: plain functions that measure a behaviour inside a language model.

Nothing in this package imports pytest; every probe can be called from a notebook. Installed, the
package is ``interp_claims.probes``, registered like any user's probe package through the entry point
``[project.entry-points."interp_claims.probes"] builtin = "interp_claims.probes"``: importing it
imports every module here, so a new ``probes/<name>.py`` needs no listing.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
