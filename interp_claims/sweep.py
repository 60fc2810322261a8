"""Claims over training checkpoints, measured together: each checkpoint is loaded once, alone in
memory, and every claim that ranges over it is measured before it is freed. No pytest here."""

from collections.abc import Callable
from dataclasses import dataclass, field

from interp_claims.builtin.cache import announce
from interp_claims.checkpoints import checkpoint_model, checkpoint_names
from interp_claims.claims import Claim
from interp_claims.context import NonFiniteLogits
from interp_claims.errors import ModelConfigError
from interp_claims.matrix import Combination
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.measurer import Measurer


@dataclass
class CheckpointSweep:
    """One combination's claims over checkpoints, and what they measured."""

    claims: list[Claim] = field(default_factory=list)  # the selected ones, measured together
    results: dict[str, list | Exception] = field(default_factory=dict)  # claim id -> [(name, Measurement)] or its error
    work: dict[str, float] | None = None  # checkpoints loaded, load and claim seconds

    def measure(self, claim: Claim, combo: Combination, free_memory: Callable[[], None]) -> list[tuple[str, Measurement]]:
        """(checkpoint name, Measurement) of ``claim`` on each of its checkpoints, in order.

        The first claim asked for measures every pending one: ``free_memory`` empties memory, then
        each checkpoint loads once. A bad checkpoint name or a bad input raises ProbeInputError for
        its claim; a checkpoint that cannot be loaded raises ModelError."""
        if claim.id not in self.results:
            pending = [c for c in self.claims if c.id not in self.results]
            pending += [claim] if claim not in pending else []
            wanted: dict[str, list[str]] = {}
            for c in pending:
                try:
                    wanted[c.id] = checkpoint_names(combo.spec, combo.source, c.checkpoints)
                    self.results[c.id] = []
                except ModelConfigError as error:
                    self.results[c.id] = ProbeInputError(str(error))
            free_memory()  # nothing else in memory while the checkpoints load
            self.work = self.work or {"checkpoints": 0, "load_seconds": 0.0, "claim_seconds": 0.0}
            names = list(dict.fromkeys(n for names in wanted.values() for n in names))
            for number, name in enumerate(names, start=1):
                users = [c for c in pending if name in wanted.get(c.id, ()) and isinstance(self.results[c.id], list)]
                announce(f"checkpoint {name} ({number}/{len(names)}) of {combo.label}: {len(users)} claim(s)")
                self._measure_checkpoint(combo, name, users)
        result = self.results[claim.id]
        if isinstance(result, Exception):
            raise result
        return result

    def _measure_checkpoint(self, combo: Combination, name: str, claims: list[Claim]) -> None:
        spec, source = checkpoint_model(combo.spec, combo.source, name)
        measurer = Measurer(spec, combo.run_device, combo.dtype, combo.convention, source)
        measurer.plan(claims)
        measurer.load()
        for claim in claims:
            try:
                self.results[claim.id].append((name, measurer.measure(claim)))
            except (ProbeInputError, NonFiniteLogits) as error:
                self.results[claim.id] = ProbeInputError(f"checkpoint {name}: {error}")
        self.work["checkpoints"] += 1
        self.work["load_seconds"] += measurer.load_seconds
        self.work["claim_seconds"] += measurer.claim_seconds
        measurer.close()
