"""Firm agents: thin Mesa views of the firm arrays.

The market works on arrays (structure of arrays: one numpy array per attribute, one entry per
firm), so that clearing stays vectorised. Each :class:`Firm` is a ``mesa.Agent`` that reads its own
entry of those arrays, so that the DataCollector, the browser page and user code see agents with
the attributes a policy analyst expects, while no Python loop over firms runs in the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from model.model import CarbonMarket


class Firm(mesa.Agent):
    """A regulated entity: a power plant, steel mill, cement plant, smelter ...

    Attributes read from the model's arrays for the current year (t, yuan/t, yuan).
    """

    def __init__(self, model: CarbonMarket, index: int) -> None:
        """Create the view of firm ``index`` of ``model.firms``."""
        super().__init__(model)
        self.index = index

    # static attributes
    @property
    def firm_id(self) -> str:
        """The firm's id in the input table."""
        return str(self.model.firms.firm_id[self.index])

    @property
    def sector(self) -> str:
        """Its sector (power, steel, cement, aluminium, ...)."""
        return str(self.model.firms.sector[self.index])

    @property
    def firm_type(self) -> str:
        """Its type (e.g. coal_gt300, gas, bf_bof, clinker)."""
        return str(self.model.firms.firm_type[self.index])

    # this year's state
    def _now(self, name: str) -> float:
        return float(self.model.state[name][self.index])

    @property
    def covered(self) -> bool:
        """Whether the firm is covered this year."""
        return bool(self.model.state["covered"][self.index])

    @property
    def output(self) -> float:
        """Output this year in its sector's unit (MWh, t product)."""
        return self._now("output")

    @property
    def emissions(self) -> float:
        """Verified emissions this year (after abatement), t CO2."""
        return self._now("emissions")

    @property
    def intensity(self) -> float:
        """Verified emissions per unit of output this year (t CO2 per MWh or t product)."""
        output = self.output
        return self.emissions / output if output > 0 else 0.0

    @property
    def abatement(self) -> float:
        """Abatement this year, t CO2."""
        return self._now("abatement")

    @property
    def allocation(self) -> float:
        """Free allocation this year, t."""
        return self._now("allocation")

    @property
    def cea_bought(self) -> float:
        """CEA bought this year, t (negative when sold)."""
        return self._now("cea_bought")

    @property
    def ccer_used(self) -> float:
        """CCER surrendered this year, t."""
        return self._now("ccer_used")

    @property
    def holdings(self) -> float:
        """Allowances banked at the end of the year, t."""
        return self._now("banked")

    @property
    def marginal_cost(self) -> float:
        """Its MAC at its abatement, yuan/t."""
        return self._now("mac")

    @property
    def compliance_cost(self) -> float:
        """Abatement + offsets + net CEA purchases + penalties this year, yuan."""
        return self._now("total_cost")

    @property
    def is_buyer(self) -> bool:
        """Whether it bought allowances this year."""
        return self.cea_bought > 0
