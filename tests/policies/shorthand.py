"""Short names for the engine tests: the bundled policies, the visit types, the hospital levels."""

from __future__ import annotations

from policies.benefits import PolicySet, load_policies
from policies.vocabulary import HospitalLevel, VisitType

POLICIES: PolicySet = load_policies()

INPATIENT = VisitType.INPATIENT
CHRONIC = VisitType.OUTPATIENT_CHRONIC
GENERAL = VisitType.OUTPATIENT_GENERAL
PRIMARY = HospitalLevel.PRIMARY
SECONDARY = HospitalLevel.SECONDARY
TERTIARY = HospitalLevel.TERTIARY
