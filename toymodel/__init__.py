"""Toy model of randomness-induced gradient masking (paper Sec. 4.2, Appendix A)."""
