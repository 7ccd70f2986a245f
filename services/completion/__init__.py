"""attune-completion: stores results and terminal states, forwards workflow outcomes."""
