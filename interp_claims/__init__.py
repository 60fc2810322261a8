"""interp-claims: claims about what a language model does inside, as pytest tests.

The engine: the pytest plugin (``plugin``), claim files (``claims``), model loading
(``models``, ``hub``), the shared forward passes (``context``), the report (``report``) and
the built-in models (``builtin``). The measurements themselves live in the ``probes``
package. A probe imports what it needs from here::

    from interp_claims.context import ProbeContext
    from interp_claims.measurement import Measurement, ProbeInputError
    from interp_claims.registry import probe

Importing this package imports nothing heavy: pytest loads it at every start.
"""

__version__ = "0.2.0"
