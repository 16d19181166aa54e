"""Price expectations: the allowance price each firm expects next year.

Three rules, mixed across firms by the scenario's ``[expectations]`` shares (each firm's rule is
drawn once from the model's generator):

* **myopic**: next year's price equals the last price seen;
* **adaptive**: a weighted average of past prices, ``e <- w * p_last + (1 - w) * e``;
* **perfect** foresight: the equilibrium price path of the whole horizon
  (:func:`model.intertemporal.hotelling_path`), computed once from the scenario's projected years.

A myopic or adaptive firm banks allowances while its expected price, discounted by one year,
exceeds today's price (:func:`model.market.banking_knots`). Firms with perfect foresight hold the
bank of the equilibrium path (in proportion to their allocation): at a price on the path they are
indifferent between holding and selling, and the path says how much the market holds. Investment
decisions use the same expectations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MYOPIC, ADAPTIVE, PERFECT = 0, 1, 2
RULES = ("myopic", "adaptive", "perfect")


@dataclass
class Expectations:
    """The expectation state of all firms.

    Attributes:
        rule: Each firm's rule (MYOPIC, ADAPTIVE or PERFECT).
        weight: Weight of the latest price in adaptive expectations.
        discount_rate: Firms' discount rate, 1/yr.
        last_price: The last allowance price seen (the reference price before the first year).
        adaptive: The adaptive expectation, yuan/t.
        path: Perfect-foresight prices by year (empty without perfect-foresight firms).
        path_bank: The market's bank at the end of each year on that path, t.
    """

    rule: np.ndarray
    weight: float
    discount_rate: float
    last_price: float
    adaptive: float = field(init=False)
    path: dict[int, float] = field(default_factory=dict)
    path_bank: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.adaptive = self.last_price

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, shares: tuple[float, float, float],
             weight: float, discount_rate: float, reference_price: float) -> Expectations:
        """Assign each of ``n`` firms a rule with the given (myopic, adaptive, perfect) shares.

        A population with a single rule draws nothing from ``rng``.
        """
        p = np.asarray(shares, float)
        if (p == 1.0).any():
            rule = np.full(n, int(np.argmax(p)), dtype=np.int8)
        else:
            rule = rng.choice(3, size=n, p=p / p.sum()).astype(np.int8)
        return cls(rule, weight, discount_rate, reference_price)

    @property
    def needs_path(self) -> bool:
        """Whether any firm has perfect foresight."""
        return bool((self.rule == PERFECT).any())

    def next_price(self, year: int) -> np.ndarray:
        """Each firm's expected allowance price for ``year + 1``, yuan/t.

        Perfect foresight covers the simulated horizon: after its last year allowances have no
        value (the terminal condition of the path), so nobody with foresight banks into it.
        """
        return self.rule_prices(year).take(self.rule)

    def rule_prices(self, year: int) -> np.ndarray:
        """The price each rule expects for ``year + 1`` (MYOPIC, ADAPTIVE, PERFECT), yuan/t:
        :meth:`next_price` of a firm is the entry of its rule (firms sharing a rule share it)."""
        return np.array((self.last_price, self.adaptive, self.path.get(year + 1, 0.0)))

    def threshold(self, year: int) -> np.ndarray:
        """The price below which each firm holds allowances for next year (discounted), yuan/t."""
        return self.rule_thresholds(year).take(self.rule)

    def rule_thresholds(self, year: int) -> np.ndarray:
        """:meth:`threshold` of each rule (MYOPIC, ADAPTIVE, PERFECT), yuan/t."""
        return self.rule_prices(year) / (1.0 + self.discount_rate)

    def observe(self, price: float) -> None:
        """Update with this year's price."""
        self.adaptive = self.weight * price + (1.0 - self.weight) * self.adaptive
        self.last_price = price
