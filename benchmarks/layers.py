"""Where one face's time goes in the network, layer group by layer group, against the
machine's own limit (issue 45): each group's arithmetic (GFLOP of its direct convolutions,
counted by torch on the straightforward network), its seconds in the fast network as the
restorer runs it (fp32, one face, the threads the CPU gives), the GFLOP/s that makes, and
the seconds the group would take at the sgemm peak measured in the same run (the limit),
with its stride-1 3x3 convs on Winograd F(4x4, 3x3), a quarter of the multiplications, and
its other convs direct: the transposed up-convs and the encoder's strided ones (their
four-phase forms, the blur folded in, need as many multiplications on Winograd as direct;
measured slower).

    python benchmarks/benchmark.py --layers [--sizes 512 2048]
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import release_network

PEAK_SIDE = 2048  # the sgemm that measures the peak: 2 x 2048^3 flops


def sgemm_peak(repeats=5):
    """GFLOP/s of a large fp32 matrix product on the threads torch has now: the best of
    `repeats`."""
    a, b = torch.rand(PEAK_SIDE, PEAK_SIDE), torch.rand(PEAK_SIDE, PEAK_SIDE)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * PEAK_SIDE ** 3 / best / 1e9


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def group_flops(network, x):
    """(GFLOP, of which stride-1 3x3 convs) of each layer group of the straightforward
    network: the encoder's blocks by the size of their output, the decoder's levels by
    theirs (4: its first conv and to-RGB)."""
    with torch.inference_mode(), FlopCounterMode(display=False, depth=None) as counter:
        network(x)
    by_module = counter.get_flop_counts()
    counts = {name: sum(ops.values()) / 1e9 for name, ops in by_module.items()}
    size = network.size
    groups = {f"encoder {size >> index}": (counts[f"GPEN.ecd{index}.0"], 0.0)
              for index in range(network.n_stages)}

    def convolution(name):  # a styled conv's own convolution, without its modulation
        return sum(flops for op, flops in by_module[f"GPEN.generator.{name}"].items()
                   if "convolution" in str(op)) / 1e9

    groups["decoder 4"] = (counts["GPEN.generator.conv1"] + counts["GPEN.generator.to_rgb1"],
                           convolution("conv1"))
    for index, (resolution, *_) in enumerate(network.generator.levels()):
        groups[f"decoder {resolution}"] = (sum(counts[f"GPEN.generator.{name}"] for name in (
            f"convs.{2 * index}", f"convs.{2 * index + 1}", f"to_rgbs.{index}")),
            convolution(f"convs.{2 * index + 1}"))
    return groups


def group_seconds(fast, x, repeats=3):
    """Seconds of each group in the fast network (best of `repeats` after a first run), by
    hooks on its modules; the top level, which streams in bands outside its module's
    forward, is what is left of the whole."""
    modules = {f"encoder {fast.size >> index}": block for index, block in enumerate(fast.encoder)}
    modules = [*modules.items(), ("decoder 4", fast.conv1), ("decoder 4", fast.to_rgb1),
               *((f"decoder {8 << index}", level) for index, level in enumerate(fast.levels))]
    spent, started = {}, {}
    for name, module in modules:
        module.register_forward_pre_hook(lambda m, args, name=name: started.update({
            name: time.perf_counter()}))
        module.register_forward_hook(lambda m, args, out, name=name: spent.update({
            name: spent.get(name, 0.0) + time.perf_counter() - started[name]}))
    runs = []
    with torch.inference_mode():
        fast(x)
        for _ in range(repeats):
            spent.clear()
            total = _timed(lambda: fast(x))
            runs.append((total, dict(spent)))
    total, spent = min(runs, key=lambda run: run[0])
    top = f"decoder {fast.size}"
    spent.setdefault(top, 0.0)
    spent[top] += total - sum(spent.values())  # streamed, with the style code
    return total, spent


def table(sizes=(512,)):
    """The layer table for each release size, and the whole network against its limit."""
    from gpen_ext.checkpoints import load_model
    peak = sgemm_peak()
    print(f"\nLayer groups, fp32, one face, {torch.get_num_threads()} threads; sgemm peak "
          f"{peak:.0f} GFLOP/s ({PEAK_SIDE}^3 product, best of 5, same run)")
    for size in sizes:
        network = release_network(size)
        x = torch.rand(1, 3, size, size) * 2 - 1
        flops = group_flops(network, x)
        total, seconds = group_seconds(load_model(network.state_dict()), x)
        whole = sum(gflop for gflop, _ in flops.values())
        print(f"GPEN-BFR-{size}: {whole:.0f} GFLOP in {total:.2f} s")
        print(f"{'group':>14}{'GFLOP':>8}{'s':>8}{'GFLOP/s':>9}{'of peak':>9}"
              f"{'limit s':>9}{'s/limit':>9}")
        limits = 0.0
        for name, (gflop, winograd_gflop) in flops.items():
            spent = seconds.get(name, 0.0)
            limit = (gflop - winograd_gflop * 3 / 4) / peak
            limits += limit
            rate = gflop / spent if spent else float("nan")
            print(f"{name:>14}{gflop:>8.2f}{spent:>8.3f}{rate:>9.0f}{rate / peak:>8.0%} "
                  f"{limit:>8.3f}{spent / limit if limit else float('nan'):>9.1f}")
        print(f"{'whole':>14}{whole:>8.1f}{total:>8.2f}"
              f"{whole / total:>9.0f}{whole / total / peak:>8.0%} "
              f"{limits:>8.3f}{total / limits:>9.1f}", flush=True)
