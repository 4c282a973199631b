"""The paper's numbers, written once. Every other module that shows or tests a paper number reads it here.

All rows are the paper's CIFAR-10 (WRN-28-10, l_inf 8/255) or ImageNet (ResNet-50, l_inf 4/255) results;
accuracies in percent.
"""
from __future__ import annotations

PURIFIERS = ("RevPure", "DiffPure", "DDIM RevPure")        # Table 2's claimed order, best first
CIFAR10 = "CIFAR-10 (WRN-28-10, l_inf 8/255)"

TABLE1_ROWS = [  # Table 1
    {"purifier": "DDPM (CIFAR-10)", "method": "DiffPure", "fix": "no", "t_star": 100,
     "clean": 84.51, "bpda": 82.38, "eot": 80.8},
    {"purifier": "DDPM (CIFAR-10)", "method": "DiffPure", "fix": "yes", "t_star": 100,
     "clean": 85.25, "bpda": 60.62, "eot": 60.7},
    {"purifier": "Guided (ImageNet)", "method": "DiffPure", "fix": "no", "t_star": 150,
     "clean": 69.0, "bpda": 67.0, "eot": None},
    {"purifier": "Guided (ImageNet)", "method": "DiffPure", "fix": "yes", "t_star": 150,
     "clean": 68.5, "bpda": 34.0, "eot": None},
]
TABLE2_ROWS = [  # Table 2, CIFAR-10, fixed noise, t* = 150
    {"purifier": "DDPM (CIFAR-10)", "method": "DiffPure", "fix": "yes", "t_star": 150,
     "clean": 79.61, "bpda": 68.00, "eot": 67.2},
    {"purifier": "DDPM (CIFAR-10)", "method": "RevPure", "fix": "yes", "t_star": 150,
     "clean": 81.92, "bpda": 74.20, "eot": 74.9},
    {"purifier": "DDPM (CIFAR-10)", "method": "DDIM RevPure", "fix": "n/a", "t_star": 150,
     "clean": 75.81, "bpda": 44.12, "eot": 44.7},
]
TABLE3_ROWS = [  # Table 3 (its FID is Inception FID)
    {"purifier": "paper: DDPM (EMA), CIFAR-10", "method": "RevPure", "fix": "yes", "t_star": 150,
     "fid": 3.212, "clean": 81.92, "bpda": 74.20},
    {"purifier": "paper: DDPM (Non-EMA), CIFAR-10", "method": "RevPure", "fix": "yes", "t_star": 150,
     "fid": 12.138, "clean": 80.15, "bpda": 70.21},
]
T_STARS = (1, 50, 100, 150, 200)
TABLE_S1 = {  # clean and BPDA accuracy at each t* in T_STARS
    "clean": {"DiffPure": [94.0, 89.4, 83.7, 80.7, 75.5], "RevPure": [94.9, 91.6, 86.7, 83.1, 77.7],
              "DDIM RevPure": [95.0, 90.1, 81.8, 77.6, 69.4]},
    "bpda": {"DiffPure": [0.0, 31.2, 60.2, 67.2, 68.8], "RevPure": [0.0, 50.2, 72.8, 75.2, 72.8],
             "DDIM RevPure": [0.0, 22.7, 39.3, 44.3, 41.3]},
}
S_STARS = (5, 10, 20, 50, 75, 150)
TABLE_S2 = {  # clean and BPDA accuracy at each s* in S_STARS (t* = 150)
    "clean": {"DiffPure": [66.6, 47.7, 33.6, 34.5, 48.1, 80.7], "RevPure": [81.3, 70.3, 54.4, 58.8, 68.4, 83.1],
              "DDIM RevPure": [95.2, 95.3, 94.3, 91.4, 87.5, 77.6]},
    "bpda": {"DiffPure": [0.0, 0.0, 0.0, 0.5, 3.5, 67.2], "RevPure": [0.0, 0.0, 0.1, 1.8, 11.9, 75.2],
             "DDIM RevPure": [0.0, 0.0, 0.0, 2.2, 11.3, 44.3]},
}
TABLE_S3_ROWS = [  # Table S3: remaining adversarial projection (mean ± SD), BPDA, PGD-l2 at eps = projection
    {"method": "paper (CIFAR-10): DiffPure", "projection": "0.0972 ± 0.0985", "bpda": 68.00, "pgd_l2": 61.75,
     "eps_l2": 0.0972},
    {"method": "paper (CIFAR-10): RevPure", "projection": "0.0571 ± 0.0758", "bpda": 74.20, "pgd_l2": 78.50,
     "eps_l2": 0.0571},
    {"method": "paper (CIFAR-10): DDIM RevPure", "projection": "0.2001 ± 0.1280", "bpda": 44.12, "pgd_l2": 26.49,
     "eps_l2": 0.2001},
]
OPTIMUM_T_STAR = {"DiffPure": 200, "RevPure": 150, "DDIM RevPure": 150}   # Sec. 5.3, Fig. 2a
FIG4_PERTURBATIONS = 30_000                                               # Fig. 4b


def table1(cell: str) -> tuple[float, float]:
    """(no fix, fixed noise) CIFAR-10 accuracy of DiffPure in Table 1 for "clean", "bpda" or "eot"."""
    no, yes = (r[cell] for r in TABLE1_ROWS if r["purifier"] == "DDPM (CIFAR-10)")
    return no, yes


def table2(method: str, cell: str) -> float:
    """Table 2's CIFAR-10 accuracy of `method` for "clean", "bpda" or "eot"."""
    return next(r[cell] for r in TABLE2_ROWS if r["method"] == method)


def table3(ema: bool, cell: str) -> float:
    """Table 3's value ("fid", "clean", "bpda") for the EMA (True) or non-EMA (False) weights."""
    return TABLE3_ROWS[0 if ema else 1][cell]


def table_s3(method: str, cell: str) -> float:
    """Table S3's value ("projection" mean, "bpda", "pgd_l2") for `method`."""
    row = next(r for r in TABLE_S3_ROWS if r["method"].endswith(f": {method}"))
    return float(row["projection"].split(" ")[0]) if cell == "projection" else row[cell]


def at(table: dict, grid: tuple, metric: str, method: str, value: int) -> float | None:
    """Table S1 / S2 value of `metric` for `method` at t* or s* = value (None off the paper's grid)."""
    return dict(zip(grid, table[metric][method])).get(value)
