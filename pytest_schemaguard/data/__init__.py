"""The ``data[<rev>]`` checks: every revision upgraded and downgraded on tables with rows."""
