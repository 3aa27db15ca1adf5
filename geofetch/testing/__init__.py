"""Local servers for tests and demos: a small website (:mod:`.site`)."""
