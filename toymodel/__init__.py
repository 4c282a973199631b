"""Toy model of randomness-induced gradient masking (paper Sec. 4.2, Appendix A)."""
from toymodel.gradient import GradientResult, pgd
from toymodel.simulate import Estimate, estimate, estimate_curve, simulate_dist2
from toymodel.theory import (bound_eot, bound_perfect, clt_limit, clt_psi, exact_success,
                             log_exact_success, log_psi, psi)

__all__ = ["GradientResult", "pgd", "Estimate", "estimate", "estimate_curve", "simulate_dist2", "bound_eot",
           "bound_perfect", "clt_limit", "clt_psi", "exact_success", "log_exact_success",
           "log_psi", "psi"]
