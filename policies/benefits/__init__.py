"""Benefit policies as data (SETTLEMENT.md §6): one YAML file per regional policy, its loader
and the dated-parameter model. Imports nothing of the settlement engine or the access rules.

>>> from datetime import date
>>> policies = load_policies()
>>> policy = policies.in_force("510402", date(2023, 3, 1))
>>> policy.id, policy.pcdi_for(2022).value, policy.pcdi_for(2022).reference
('510400-2023', Decimal('42000'), 'assumed')
>>> policy.discovery_threshold(2023)
Decimal('21000.00')
"""

from __future__ import annotations

from policies.benefits.loader import load_policies
from policies.benefits.model import (
    BENEFITS_DIR,
    AssistanceRules,
    BasicRules,
    CategoryRules,
    CriticalIllnessRules,
    DepositWaiverRules,
    DiscoveryRules,
    Fund,
    Param,
    ParameterNotInForce,
    Policy,
    PolicySet,
    ScheduleRule,
    SecondaryRules,
    Segment,
    SpecialDiseases,
    SubsidyPart,
    Tilt,
    UninsuredLedger,
    UninsuredRules,
    Unit,
    Value,
)

__all__ = [
    "BENEFITS_DIR",
    "AssistanceRules",
    "BasicRules",
    "CategoryRules",
    "CriticalIllnessRules",
    "DepositWaiverRules",
    "DiscoveryRules",
    "Fund",
    "Param",
    "ParameterNotInForce",
    "Policy",
    "PolicySet",
    "ScheduleRule",
    "SecondaryRules",
    "Segment",
    "SpecialDiseases",
    "SubsidyPart",
    "Tilt",
    "UninsuredLedger",
    "UninsuredRules",
    "Unit",
    "Value",
    "load_policies",
]
