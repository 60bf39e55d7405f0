"""Migration safety: what each revision's upgrade does to the tables that existed before it,
measured on the server (rewrites, locks, validating scans), reported as ``safety[<rev>]`` items."""
