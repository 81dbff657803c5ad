"""The simulated customers of the serving sample, shared by make_data.py and traffic.py.

Before the shift: settled customers (about 45 years old, 30 months of tenure, moderate charges, the
standard plan most). After it: a marketing push brings young, new customers on the basic plan with
higher charges. Whether a customer churns follows one rule in both worlds, but not a linear one: the
young are on a promotion and churn far less than their charges and short tenure suggest. A model
fitted on the old customers is wrong about most of the new ones (accuracy near 0.45); one retrained
with their labels does clearly better (near 0.65), and about as well on the old customers.
"""

from __future__ import annotations

import math
import random

FEATURES = ("age", "tenure", "charges", "plan")
PLANS = ("basic", "standard", "pro")
TARGET = "churned"
CLASSES = ("no", "yes")


def customer(rng: random.Random, shifted: bool) -> dict:
    if shifted:
        age, tenure, charges, weights = rng.gauss(27, 5), rng.expovariate(1 / 6), rng.gauss(88, 14), (6, 3, 1)
    else:
        age, tenure, charges, weights = rng.gauss(46, 10), rng.expovariate(1 / 30), rng.gauss(64, 15), (3, 5, 2)
    return {"age": int(min(85, max(18, round(age)))), "tenure": int(min(120, round(tenure))),
            "charges": round(min(200.0, max(10.0, charges)), 2), "plan": rng.choices(PLANS, weights)[0]}


def churn_probability(x: dict) -> float:
    if x["age"] >= 35:
        price = 0.06 * (x["charges"] - 65)
    else:  # the young, on the promotion: they mind the price far less
        price = -1.6 + 0.04 * (x["charges"] - 88)
    logit = -0.4 + price - 0.05 * (x["tenure"] - 24) + {"basic": 0.5, "standard": 0.0, "pro": -0.5}[x["plan"]]
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, logit))))


def churns(rng: random.Random, x: dict) -> str:
    return CLASSES[rng.random() < churn_probability(x)]
