"""The pure one-stop settlement engine (SETTLEMENT.md §3–§5, §7, §8): who the person is on a
visit, the five payers, schedules and ledgers, the explanation, the enrollment subsidy and the
case format. Reads the benefit policies (``policies.benefits``); no database, no GraphQL, no I/O.
"""
