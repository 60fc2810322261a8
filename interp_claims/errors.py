"""Why a model cannot be used, and how a run ends a case without a verdict. A model error ends
the session with one line naming the model, the cause and the remedy (``pytest`` exit code 4),
never a traceback per claim. A leaf: the engine raises these, the pytest adapter maps them."""


class ModelError(Exception):
    """The model asked for cannot be used in this session."""


class ModelConfigError(ModelError, ValueError):
    """The model, device, dtype or revision asked for is not valid (a usage error)."""


class ModelUnavailable(ModelError):
    """The model is valid, but its weights cannot be had here now (offline, Hub unreachable, not cached).
    ``--skip-missing-model`` turns this one into skips."""


class ModelLoadError(ModelError):
    """The model's files are there but unusable: unparsable config, truncated weights, no tokenizer,
    an architecture the claims cannot use, an unknown repository or revision."""


class RunStopped(Exception):
    """A model the user asked for cannot be had or loaded: the run cannot go on (a usage error
    before any test runs, the end of the session during one; never a run of skips)."""


class CombinationSkipped(Exception):
    """A combination's weights cannot be had and the user chose to skip (``--skip-missing-model``)."""


class ClaimUnmeasured(Exception):
    """The claim fails before its check: a bad input, non-finite logits, values that cannot be compared."""


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'head_score'?)' for a near match among ``known``, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
