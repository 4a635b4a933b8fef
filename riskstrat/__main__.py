"""``python -m riskstrat`` is the ``riskstrat`` command."""

from riskstrat.cli import main

if __name__ == "__main__":  # not when a stage's own process (riskstrat.stages.isolated) starts
    main()
