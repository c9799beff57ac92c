"""TA side: authoring tools (release, checks, examples, mutants, the GPU check, the student edition)."""
