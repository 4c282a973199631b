"""Toy model of randomness-induced gradient masking (paper Sec. 4.2, Appendix A)."""
from toymodel.gradient import GradientResult, pgd
from toymodel.simulate import Estimate, estimate, estimate_curve, simulate_dist2, simulate_partial_dist2
from toymodel.theory import (bound_eot, bound_perfect, clt_limit, clt_psi, covering_bound, exact_success,
                             log_exact_success, log_no_attack_success, log_psi, no_attack_success,
                             partial_success, psi)

__all__ = ["GradientResult", "pgd", "Estimate", "estimate", "estimate_curve", "simulate_dist2",
           "simulate_partial_dist2", "bound_eot", "bound_perfect", "clt_limit", "clt_psi", "covering_bound",
           "exact_success", "log_exact_success", "log_no_attack_success", "log_psi", "no_attack_success",
           "partial_success", "psi"]
