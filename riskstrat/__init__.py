"""riskstrat: population risk stratification for the NHS.

SUS+ and GP extracts (data contract v1) are validated, pseudonymised and linked, turned
into as-of features, and used to train, score and explain emergency-admission risk models;
outputs go to GP practices (their own patients, for direct care) and to commissioners
(pseudonymised, with small-number suppression).
"""

__version__ = "0.1.0"
