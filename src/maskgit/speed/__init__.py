"""Sampling speed: analytic FLOPs and memory traffic, timed benchmark cells, and the report (`maskgit bench`)."""

from .bench import BenchSettings, run_benchmark
from .flops import sampler_cost

__all__ = ["BenchSettings", "run_benchmark", "sampler_cost"]
