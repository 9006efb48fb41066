"""Analyses of seccomp programs and profiles: exact decompilation (:mod:`.explain`), semantic
difference (:mod:`.diff`), security audit (:mod:`.audit`) and equivalence checks.

Submodules are imported on demand; importing this package costs nothing.
"""
