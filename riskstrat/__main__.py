"""``python -m riskstrat`` is the ``riskstrat`` command."""

from riskstrat.cli import main

main()
